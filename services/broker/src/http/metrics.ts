import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Prometheus metrics, one registry per broker instance (tests build several). */
export interface Metrics {
  readonly registry: Registry;
  readonly httpRequests: Histogram<'method' | 'route' | 'status'>;
  readonly logins: Counter<'outcome'>;
  readonly auditEvents: Counter<'type'>;
  readonly jobs: Counter<'kind' | 'outcome'>;
  readonly terminalRests: Counter;
  /** Time bulk channels were held so that interactive sessions stay responsive (BulkPacer). */
  readonly bulkPacedSeconds: Counter;
  /** Control links of zone connectors to this replica. */
  readonly connectorLinks: Gauge;
  /** Streams through connectors: opened, refused (by either side), lost with their connector. */
  readonly connectorStreams: Counter<'outcome'>;
}

export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true)
    collectDefaultMetrics({ register: registry, prefix: 'airlock_' });
  return {
    registry,
    httpRequests: new Histogram({
      name: 'airlock_http_request_duration_seconds',
      help: 'HTTP request duration by route and status.',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    logins: new Counter({
      name: 'airlock_logins_total',
      help: 'Sign-in attempts by outcome.',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    auditEvents: new Counter({
      name: 'airlock_audit_events_total',
      help: 'Audit events appended, by type.',
      labelNames: ['type'],
      registers: [registry],
    }),
    jobs: new Counter({
      name: 'airlock_jobs_total',
      help: 'Lifecycle jobs run, by kind and outcome.',
      labelNames: ['kind', 'outcome'],
      registers: [registry],
    }),
    terminalRests: new Counter({
      name: 'airlock_gateway_terminal_rests_total',
      help: 'Idle shells whose terminal emulator was put to rest to save memory.',
      registers: [registry],
    }),
    bulkPacedSeconds: new Counter({
      name: 'airlock_gateway_bulk_paced_seconds_total',
      help: 'Seconds bulk channels (exec, SFTP, forwards) were held while someone typed.',
      registers: [registry],
    }),
    connectorLinks: new Gauge({
      name: 'airlock_connector_links',
      help: 'Control links of zone connectors to this replica.',
      registers: [registry],
    }),
    connectorStreams: new Counter({
      name: 'airlock_connector_streams_total',
      help: 'Streams through zone connectors, by outcome (opened, refused, lost).',
      labelNames: ['outcome'],
      registers: [registry],
    }),
  };
}
