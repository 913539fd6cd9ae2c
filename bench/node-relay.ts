// The floor under any proxy written for Node: every byte copied from one socket to the other,
// nothing framed, parsed or buffered by hand. bench/passthrough runs it beside the proxy, so
// "proxy / Node relay" says what the proxy's own work costs, apart from what Node and the kernel do.
//
//   node dist/bench/node-relay.js LISTEN_PORT (HOST:PORT | /unix/socket/path)
import net from 'node:net';

const [listenPort, target] = process.argv.slice(2);
if (!listenPort || !target) {
  console.error('usage: node-relay LISTEN_PORT (HOST:PORT | /unix/socket/path)');
  process.exit(2);
}
const connectTo = (): net.Socket => {
  if (target.startsWith('/')) return net.connect(target);
  const i = target.lastIndexOf(':');
  return net.connect(Number(target.slice(i + 1)), target.slice(0, i));
};

net
  .createServer((client) => {
    const upstream = connectTo();
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  })
  .listen(Number(listenPort), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
