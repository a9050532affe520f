/** A small JSON client for the broker's HTTP API, as curl would use it. */
export interface ApiResponse {
  readonly status: number;
  readonly headers: Headers;
  /** Parsed JSON when the response is JSON, else the text. */
  readonly body: any;
}

export interface ApiClient {
  get(path: string, token?: string): Promise<ApiResponse>;
  post(path: string, body: unknown, token?: string): Promise<ApiResponse>;
  put(path: string, body: unknown, token?: string): Promise<ApiResponse>;
}

export function apiClient(baseUrl: string): ApiClient {
  const call = async (
    method: string,
    path: string,
    body: unknown,
    token: string | undefined,
  ): Promise<ApiResponse> => {
    const headers: Record<string, string> = {};
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(new URL(path, baseUrl), {
      method,
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(15_000),
    });
    const text = await res.text();
    const isJson = (res.headers.get('content-type') ?? '').includes('application/json');
    return { status: res.status, headers: res.headers, body: isJson ? JSON.parse(text) : text };
  };
  return {
    get: (path, token) => call('GET', path, undefined, token),
    post: (path, body, token) => call('POST', path, body, token),
    put: (path, body, token) => call('PUT', path, body, token),
  };
}
