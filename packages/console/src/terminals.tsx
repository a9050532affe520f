import { FitAddon } from '@xterm/addon-fit';
import { Terminal, type ITerminalOptions } from '@xterm/xterm';
import { useCallback, useEffect, useRef, useState } from 'react';
import { api, describeError, wsUrl, type Command } from './api';
import { formatOffset } from './format';

/**
 * Terminal output is drawn by xterm.js, which interprets escape sequences as
 * a terminal does and puts only text into the DOM: a recorded `<script>` or an
 * OSC sequence never becomes markup. Links (OSC 8) do nothing when clicked,
 * and window titles set by the asset are ignored.
 */
const TERMINAL_OPTIONS: ITerminalOptions = {
  fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
  fontSize: 14,
  // Room below the baseline, so underscores are not clipped by the next row.
  lineHeight: 1.15,
  cursorBlink: true,
  scrollback: 5000,
  linkHandler: { activate: () => undefined },
  theme: { background: '#0f1720', foreground: '#e6edf3' },
};

function useXterm(options: ITerminalOptions): {
  ref: React.RefObject<HTMLDivElement | null>;
  term: Terminal | null;
  fit: FitAddon | null;
} {
  const ref = useRef<HTMLDivElement | null>(null);
  const [state, setState] = useState<{ term: Terminal | null; fit: FitAddon | null }>({
    term: null,
    fit: null,
  });
  useEffect(() => {
    const element = ref.current;
    if (element === null) return;
    const term = new Terminal({ ...TERMINAL_OPTIONS, ...options });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(element);
    fit.fit();
    setState({ term, fit });
    return () => term.dispose();
    // The options are fixed for a component's life.
  }, []);
  return { ref, ...state };
}

type ConnectionState =
  | { kind: 'connecting' }
  | { kind: 'open'; sessionId: string | null }
  | { kind: 'closed'; message: string };

/** The vendor's terminal on an asset: a WebSocket into the same session pipeline as SSH. */
export function BrowserTerminal({ assetId, assetName }: { assetId: string; assetName: string }) {
  const { ref, term, fit } = useXterm({});
  const [state, setState] = useState<ConnectionState>({ kind: 'connecting' });

  useEffect(() => {
    if (term === null || fit === null) return;
    const ws = new WebSocket(
      wsUrl(
        `/api/v1/assets/${encodeURIComponent(assetId)}/terminal?cols=${term.cols}&rows=${term.rows}`,
      ),
    );
    ws.binaryType = 'arraybuffer';
    const encoder = new TextEncoder();
    let sessionId: string | null = null;
    ws.onopen = () => {
      setState({ kind: 'open', sessionId: null });
      term.focus();
    };
    ws.onmessage = (event: MessageEvent<ArrayBuffer | string>) => {
      if (typeof event.data !== 'string') {
        term.write(new Uint8Array(event.data));
        return;
      }
      const message = JSON.parse(event.data) as { type: string; sessionId?: string };
      if (message.type === 'session' && message.sessionId !== undefined) {
        sessionId = message.sessionId;
        setState({ kind: 'open', sessionId });
      }
    };
    ws.onclose = (event) => {
      setState({
        kind: 'closed',
        message:
          event.code === 1000 || sessionId !== null
            ? 'The session has ended.'
            : 'The broker refused the connection: you need an active grant for this asset, now.',
      });
    };
    const input = term.onData((data) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(data));
    });
    const resize = term.onResize(({ cols, rows }) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'resize', cols, rows }));
    });
    const onWindowResize = (): void => fit.fit();
    window.addEventListener('resize', onWindowResize);
    return () => {
      window.removeEventListener('resize', onWindowResize);
      input.dispose();
      resize.dispose();
      ws.close();
    };
  }, [term, fit, assetId]);

  return (
    <section className="terminal-page" aria-label={`Terminal on ${assetName}`}>
      <p className="status" role="status" data-testid="terminal-status">
        {state.kind === 'connecting'
          ? `Connecting to ${assetName}…`
          : state.kind === 'open'
            ? `Connected to ${assetName}${state.sessionId === null ? '' : ` · session ${state.sessionId}`} · everything is recorded`
            : state.message}
      </p>
      <div className="terminal" ref={ref} data-testid="terminal" />
    </section>
  );
}

/** Watching a live session, read-only: the recording as it is written. */
export function LiveView({ sessionId }: { sessionId: string }) {
  const { ref, term } = useXterm({ disableStdin: true, cursorBlink: false });
  const [status, setStatus] = useState('Connecting…');

  useEffect(() => {
    if (term === null) return;
    const ws = new WebSocket(wsUrl(`/api/v1/sessions/${encodeURIComponent(sessionId)}/live`));
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => setStatus('Watching live (read-only)');
    ws.onmessage = (event: MessageEvent<ArrayBuffer | string>) => {
      if (typeof event.data !== 'string') {
        term.write(new Uint8Array(event.data));
        return;
      }
      const message = JSON.parse(event.data) as {
        type: string;
        cols?: number;
        rows?: number;
        reason?: string | null;
      };
      if (message.type === 'resize' && message.cols !== undefined && message.rows !== undefined)
        term.resize(message.cols, message.rows);
      if (message.type === 'ended')
        setStatus(`The session has ended (${message.reason ?? 'unknown reason'}).`);
    };
    ws.onclose = () =>
      setStatus((s) => (s.startsWith('The session has ended') ? s : 'The live view was closed.'));
    return () => ws.close();
  }, [term, sessionId]);

  return (
    <div>
      <p className="status" role="status" data-testid="live-status">
        {status}
      </p>
      <div className="terminal" ref={ref} data-testid="live-terminal" />
    </div>
  );
}

interface CastEvent {
  time: number;
  data: string;
}

/** asciicast v2: a header line, then `[time, "o", data]` lines. */
export function parseAsciicast(text: string): {
  width: number;
  height: number;
  events: CastEvent[];
} {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const header = JSON.parse(lines[0] ?? '{}') as { width?: number; height?: number };
  const events: CastEvent[] = [];
  for (const line of lines.slice(1)) {
    const parsed = JSON.parse(line) as unknown;
    if (!Array.isArray(parsed)) continue;
    const [time, kind, data] = parsed as [unknown, unknown, unknown];
    if (typeof time === 'number' && kind === 'o' && typeof data === 'string')
      events.push({ time, data });
  }
  return { width: header.width ?? 80, height: header.height ?? 24, events };
}

const SPEEDS = [0.5, 1, 2, 4, 8];

/** Replay of a recording with play/pause/seek/speed; clicking a command seeks to it. */
export function Replay({ sessionId }: { sessionId: string }) {
  const { ref, term } = useXterm({ disableStdin: true, cursorBlink: false });
  const [cast, setCast] = useState<{ events: CastEvent[]; duration: number } | null>(null);
  const [commands, setCommands] = useState<Command[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [position, setPosition] = useState(0);
  const [playing, setPlaying] = useState(false);
  const [speed, setSpeed] = useState(1);
  /** Index of the next event to write. */
  const next = useRef(0);

  useEffect(() => {
    if (term === null) return;
    let cancelled = false;
    void (async () => {
      try {
        const res = await fetch(`/api/v1/sessions/${encodeURIComponent(sessionId)}/recording`, {
          credentials: 'same-origin',
        });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        const parsed = parseAsciicast(await res.text());
        const list = await api.get<{ commands: Command[] }>(
          `/api/v1/sessions/${encodeURIComponent(sessionId)}/commands`,
        );
        if (cancelled) return;
        term.resize(parsed.width, parsed.height);
        setCast({ events: parsed.events, duration: parsed.events.at(-1)?.time ?? 0 });
        setCommands(list.commands);
      } catch (err) {
        if (!cancelled) setError(`The recording could not be loaded: ${describeError(err)}`);
      }
    })();
    return () => {
      cancelled = true;
    };
  }, [term, sessionId]);

  const seek = useCallback(
    (seconds: number) => {
      if (term === null || cast === null) return;
      term.reset();
      let i = 0;
      let chunk = '';
      while (i < cast.events.length && (cast.events[i]?.time ?? Infinity) <= seconds) {
        chunk += cast.events[i]?.data ?? '';
        i += 1;
      }
      term.write(chunk);
      next.current = i;
      setPosition(seconds);
    },
    [term, cast],
  );

  useEffect(() => {
    if (!playing || term === null || cast === null) return;
    const started = performance.now();
    const from = position;
    const timer = window.setInterval(() => {
      const now = from + ((performance.now() - started) / 1000) * speed;
      let chunk = '';
      while (
        next.current < cast.events.length &&
        (cast.events[next.current]?.time ?? Infinity) <= now
      ) {
        chunk += cast.events[next.current]?.data ?? '';
        next.current += 1;
      }
      if (chunk !== '') term.write(chunk);
      if (now >= cast.duration) {
        setPosition(cast.duration);
        setPlaying(false);
      } else setPosition(now);
    }, 50);
    return () => window.clearInterval(timer);
    // Restarted on play, pause and speed change; `position` is read at that moment.
  }, [playing, speed, term, cast]);

  const duration = cast?.duration ?? 0;
  return (
    <div className="replay">
      <div className="replay-main">
        {error !== null && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
        <div className="terminal" ref={ref} data-testid="replay-terminal" />
        <div className="controls" role="group" aria-label="Playback">
          <button
            type="button"
            onClick={() => {
              if (!playing && position >= duration) seek(0);
              setPlaying(!playing);
            }}
            disabled={cast === null}
          >
            {playing ? 'Pause' : 'Play'}
          </button>
          <input
            type="range"
            aria-label="Position"
            min={0}
            max={Math.max(duration, 0.001)}
            step={0.01}
            value={position}
            onChange={(e) => {
              setPlaying(false);
              seek(Number(e.target.value));
            }}
          />
          <span data-testid="replay-position">
            {formatOffset(position * 1000)} / {formatOffset(duration * 1000)}
          </span>
          <label>
            Speed{' '}
            <select value={speed} onChange={(e) => setSpeed(Number(e.target.value))}>
              {SPEEDS.map((s) => (
                <option key={s} value={s}>
                  {s}×
                </option>
              ))}
            </select>
          </label>
        </div>
      </div>
      <aside className="replay-commands" aria-label="Commands">
        <h3>Commands</h3>
        {commands.length === 0 ? (
          <p className="muted">No commands were recorded.</p>
        ) : (
          <ol>
            {commands.map((c) => (
              <li key={c.id}>
                <button
                  type="button"
                  className={`link command-${c.outcome}`}
                  onClick={() => {
                    setPlaying(false);
                    // The moment the command was submitted, and a little of what it printed.
                    seek(c.offsetMs / 1000 + 0.5);
                  }}
                >
                  <span className="offset">{formatOffset(c.offsetMs)}</span>{' '}
                  <code>{c.command}</code>
                  {c.outcome !== 'forwarded' && <span className="badge">{c.outcome}</span>}
                </button>
              </li>
            ))}
          </ol>
        )}
      </aside>
    </div>
  );
}
