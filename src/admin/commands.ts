/** The admin console's commands: SHOW STATS|CLIENTS|SERVERS|CACHE|CONFIG|VERSION|HELP, RELOAD, SET. */
import { PgError } from '../protocol/pg-error.js';
import { registry, PREFIX } from '../metrics/metrics.js';

export interface AdminContext {
  clients(): { id: number; user: string; database: string; address: string; state: string; connectedAt: Date }[];
  servers(): { server: string; status: string; lastError: string | undefined }[];
  cache(): [string, string][];
  config(): { name: string; value: string; reload: 'live' | 'restart' }[];
  set(name: string, value: string): string;
  reload(source: string): Promise<string>;
  version(): [string, string][];
}

export interface CommandResult {
  tag: string;
  columns?: string[];
  rows?: (string | null)[][];
  notice?: PgError;
}

const HELP: [string, string][] = [
  ['SHOW STATS', 'counters since start: connections, statements by kind, bytes, Redis commands'],
  ['SHOW CLIENTS', 'client sessions: id, user, database, address, state'],
  ['SHOW SERVERS', 'Redis servers in the pool: state, commands, errors, mean latency'],
  ['SHOW CACHE', 'parse cache and catalog cache'],
  ['SHOW CONFIG', 'settings, passwords masked; which change live'],
  ['SHOW VERSION', 'proxy, Node and upstream versions'],
  ['SHOW HELP', 'this list'],
  ['SET name = value', 'change a live setting (see SHOW CONFIG)'],
  ['RELOAD', 're-read the TLS certificate and key, flush the parse and catalog caches (as SIGHUP)'],
];

/** Our metric values as rows, label sets spelled out; histograms as their count and sum. */
async function statsRows(): Promise<(string | null)[][]> {
  const rows: (string | null)[][] = [];
  for (const m of await registry.getMetricsAsJSON()) {
    if (!m.name.startsWith(PREFIX) || m.name.startsWith(`${PREFIX}process_`) || m.name.startsWith(`${PREFIX}nodejs_`)) continue;
    for (const v of m.values as { value: number; labels: Record<string, string | number>; metricName?: string }[]) {
      const name = v.metricName ?? m.name;
      if (name.endsWith('_bucket')) continue;
      const labels = Object.entries(v.labels).map(([k, l]) => `${k}=${l}`).join(',');
      rows.push([name.slice(PREFIX.length), labels, String(v.value)]);
    }
  }
  return rows;
}

export async function runAdminCommand(sql: string, ctx: AdminContext): Promise<CommandResult[]> {
  const text = sql.trim().replace(/;\s*$/, '').trim();
  if (text === '') return [{ tag: 'EMPTY' }];
  const words = text.split(/\s+/).map((w) => w.toUpperCase());
  if (words[0] === 'SHOW' && words.length === 2) {
    switch (words[1]) {
      case 'STATS':
        return [{ tag: 'SHOW', columns: ['metric', 'labels', 'value'], rows: await statsRows() }];
      case 'CLIENTS':
        return [{ tag: 'SHOW', columns: ['id', 'user', 'database', 'address', 'state', 'connected_at'], rows: ctx.clients().map((c) => [String(c.id), c.user, c.database, c.address, c.state, c.connectedAt.toISOString()]) }];
      case 'SERVERS':
        return [{ tag: 'SHOW', columns: ['server', 'state', 'commands', 'errors', 'mean_latency_ms', 'last_error'], rows: await serverRows(ctx) }];
      case 'CACHE':
        return [{ tag: 'SHOW', columns: ['cache', 'value'], rows: ctx.cache() }];
      case 'CONFIG':
        return [{ tag: 'SHOW', columns: ['name', 'value', 'changes'], rows: ctx.config().map((c) => [c.name, c.value, c.reload]) }];
      case 'VERSION':
        return [{ tag: 'SHOW', columns: ['component', 'version'], rows: ctx.version() }];
      case 'HELP':
        return [{ tag: 'SHOW', columns: ['command', 'description'], rows: HELP }];
    }
  }
  if (words.length === 1 && words[0] === 'RELOAD') {
    const changed = await ctx.reload('RELOAD');
    return [{ tag: 'RELOAD', notice: new PgError('00000', changed, { severity: 'NOTICE' }) }];
  }
  const set = /^SET\s+([a-z_]+)\s*(?:=|TO)\s*'?([^']*?)'?$/i.exec(text);
  if (set) {
    const msg = ctx.set(set[1]!.toLowerCase(), set[2]!);
    return [{ tag: 'SET', notice: new PgError('00000', msg, { severity: 'NOTICE' }) }];
  }
  throw new PgError('42601', `unrecognized admin console command: ${text.slice(0, 80)}`, { hint: 'SHOW HELP lists the commands.' });
}

async function serverRows(ctx: AdminContext): Promise<(string | null)[][]> {
  const json = await registry.getMetricsAsJSON();
  const byServer = (metric: string, suffix?: string): Map<string, number> => {
    const m = new Map<string, number>();
    for (const v of (json.find((x) => x.name === `${PREFIX}${metric}`)?.values ?? []) as { value: number; labels: Record<string, string>; metricName?: string }[]) {
      if (suffix !== undefined && v.metricName !== `${PREFIX}${metric}${suffix}`) continue;
      m.set(String(v.labels.server), v.value);
    }
    return m;
  };
  const cmds = byServer('redis_commands_total');
  const errs = byServer('redis_errors_total');
  const sum = byServer('redis_roundtrip_seconds', '_sum');
  const count = byServer('redis_roundtrip_seconds', '_count');
  return ctx.servers().map((s) => {
    const n = count.get(s.server) ?? 0;
    return [s.server, s.status, String(cmds.get(s.server) ?? 0), String(errs.get(s.server) ?? 0), n ? ((1000 * (sum.get(s.server) ?? 0)) / n).toFixed(3) : null, s.lastError ?? null];
  });
}
