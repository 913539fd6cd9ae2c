/**
 * A TCP relay to Postgres that counts the bytes the proxy sends through it: the fast-path tests know
 * from it which statements cost an upstream round trip.
 */
import net from 'node:net';

export class CountingRelay {
  /** Bytes sent towards Postgres so far. */
  bytes = 0;

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(target: { host: string; port: number }): Promise<CountingRelay> {
    let relay: CountingRelay | undefined;
    const server = net.createServer((client) => {
      const upstream = net.connect(target.port, target.host);
      client.on('data', (d) => {
        relay!.bytes += d.length;
        upstream.write(d);
      });
      upstream.on('data', (d) => client.write(d));
      const end = (): void => {
        client.destroy();
        upstream.destroy();
      };
      client.on('close', end);
      upstream.on('close', end);
      client.on('error', end);
      upstream.on('error', end);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    relay = new CountingRelay(server, (server.address() as net.AddressInfo).port);
    return relay;
  }

  close(): void {
    this.server.close();
  }
}
