/**
 * Where webhooks may connect: never to loopback, private, link-local (cloud metadata included),
 * CGNAT, multicast, reserved, documentation, IPv4-mapped / NAT64 / ULA IPv6 addresses, unless the
 * operator allows them (WEBHOOKS_ALLOW_PRIVATE, WEBHOOKS_ALLOW_CIDRS). The check runs on every
 * address a name resolves to, at registration and again in the connection's own DNS lookup
 * (`lookup` below, handed to the HTTP request), so a name that changes its answer between the two
 * (DNS rebinding) is caught where the socket is opened.
 */
import dns from "node:dns";
import net from "node:net";

const blockedV4 = [
  ["0.0.0.0", 8], ["10.0.0.0", 8], ["100.64.0.0", 10], ["127.0.0.0", 8], ["169.254.0.0", 16], ["172.16.0.0", 12],
  ["192.0.0.0", 24], ["192.0.2.0", 24], ["192.88.99.0", 24], ["192.168.0.0", 16], ["198.18.0.0", 15], ["198.51.100.0", 24],
  ["203.0.113.0", 24], ["224.0.0.0", 4], ["240.0.0.0", 4],
] as const;
const blockedV6 = [
  ["::", 96], // unspecified, loopback (::1) and IPv4-compatible
  ["::ffff:0:0", 96], // IPv4-mapped
  ["64:ff9b::", 96], ["64:ff9b:1::", 48], // NAT64
  ["100::", 64], ["2001::", 23], ["2001:db8::", 32], ["2002::", 16], // discard, IETF protocol, documentation, 6to4
  ["fc00::", 7], // unique local (fd00:ec2::254, the AWS metadata address, is one)
  ["fe80::", 10], ["fec0::", 10], ["ff00::", 8],
] as const;

export interface GuardOptions {
  /** Allow every address (WEBHOOKS_ALLOW_PRIVATE=true: a test box or a private network). */
  allowPrivate?: boolean | undefined;
  /** Addresses allowed even though blocked above ("127.0.0.0/8", "::1/128", "10.1.2.3"). */
  allowCidrs?: readonly string[] | undefined;
}

export class RefusedAddressError extends Error {
  override name = "RefusedAddressError";
}

export interface Guard {
  /** Why the address may not be used, or undefined when it may. */
  refusal(address: string): string | undefined;
  /** A dns.lookup for http.request that fails when any address of the name is refused. */
  lookup: net.LookupFunction;
  /** Resolves `host` (a name or an address) and throws RefusedAddressError when an address is refused. */
  check(host: string): Promise<void>;
}

const family = (a: string) => (net.isIPv4(a) ? "ipv4" : "ipv6");

export function createGuard(o: GuardOptions = {}): Guard {
  // One list per family: a BlockList also matches IPv4 addresses against IPv6 rules (as mapped
  // addresses), and ::ffff:0:0/96 would then refuse every IPv4 address.
  const lists = () => ({ ipv4: new net.BlockList(), ipv6: new net.BlockList() });
  const blocked = lists();
  for (const [a, p] of blockedV4) blocked.ipv4.addSubnet(a, p, "ipv4");
  for (const [a, p] of blockedV6) blocked.ipv6.addSubnet(a, p, "ipv6");
  const allowed = lists();
  for (const c of o.allowCidrs ?? []) {
    const [a, p] = c.trim().split("/");
    if (!a || !net.isIP(a)) throw new Error(`WEBHOOKS_ALLOW_CIDRS: ${c} is not an address or CIDR`);
    const prefix = p === undefined ? (net.isIPv4(a) ? 32 : 128) : Number(p);
    allowed[family(a)].addSubnet(a, prefix, family(a));
  }

  function refusal(address: string): string | undefined {
    const a = address.replace(/^\[|\]$/g, "").split("%")[0]!;
    if (!net.isIP(a)) return `${address} is not an IP address`;
    const f = family(a);
    if (o.allowPrivate || allowed[f].check(a, f)) return undefined;
    return blocked[f].check(a, f) ? `${a} is a loopback, private, link-local or reserved address (not allowed for webhooks)` : undefined;
  }

  const lookup: net.LookupFunction = (hostname, options, callback) => {
    dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, "", 4);
      const list = addresses as dns.LookupAddress[];
      const bad = list.map((x) => refusal(x.address)).find(Boolean);
      if (bad) return callback(new RefusedAddressError(`${hostname} resolves to a refused address: ${bad}`), "", 4);
      if (list.length === 0) return callback(new Error(`${hostname} has no address`), "", 4);
      if ((options as dns.LookupOptions).all) return (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, list);
      callback(null, list[0]!.address, list[0]!.family);
    });
  };

  async function check(host: string): Promise<void> {
    const h = host.replace(/^\[|\]$/g, "");
    if (net.isIP(h)) {
      const r = refusal(h);
      if (r) throw new RefusedAddressError(r);
      return;
    }
    const list = await dns.promises.lookup(h, { all: true });
    for (const x of list) {
      const r = refusal(x.address);
      if (r) throw new RefusedAddressError(`${host} resolves to a refused address: ${r}`);
    }
  }

  return { refusal, lookup, check };
}
