/**
 * A TCP proxy the test owns, in front of a real server (RabbitMQ, PostgreSQL, Redis). `stop()` cuts
 * every connection and refuses new ones — what a client sees when the server stops — without
 * touching the shared server other tests use; `hold()` only refuses new ones (established
 * connections go on); `start()` lets connections through again.
 */
import net from "node:net";

export interface TcpProxy {
  port: number;
  /** `url` with its host and port replaced by the proxy's. */
  via(url: string): string;
  stop(): void;
  hold(): void;
  start(): void;
  close(): Promise<void>;
}

export async function tcpProxy(targetUrl: string, defaultPort: number): Promise<TcpProxy> {
  const target = new URL(targetUrl);
  const host = target.hostname;
  const port = Number(target.port || defaultPort);
  const sockets = new Set<net.Socket>();
  let up = true;
  const track = (s: net.Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
    s.on("error", () => s.destroy());
  };
  const server = net.createServer((client) => {
    track(client);
    if (!up) return void client.destroy();
    const upstream = net.connect({ host, port, noDelay: true });
    track(upstream);
    client.setNoDelay(true);
    client.pipe(upstream).pipe(client);
    client.once("close", () => upstream.destroy());
    upstream.once("close", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const own = (server.address() as net.AddressInfo).port;
  return {
    port: own,
    via(url) {
      const u = new URL(url);
      u.hostname = "127.0.0.1";
      u.port = String(own);
      return u.toString();
    },
    stop() {
      up = false;
      for (const s of sockets) s.destroy();
    },
    hold() {
      up = false;
    },
    start() {
      up = true;
    },
    async close() {
      up = false;
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
