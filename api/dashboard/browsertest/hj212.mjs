// A minimal HJ 212-2017 station for the browser tests: one TCP connection, frames with the
// standard's CRC (docs/contracts.md §8), waits for the 9014 answer of each upload.
import net from 'node:net';

export function crc(buf) {
  let reg = 0xffff;
  for (const b of buf) {
    reg = (reg >> 8) ^ b;
    for (let i = 0; i < 8; i++) {
      const out = reg & 1;
      reg >>= 1;
      if (out) reg ^= 0xa001;
    }
  }
  return reg;
}

export function frame(segment) {
  const data = Buffer.from(segment, 'ascii');
  const len = String(data.length).padStart(4, '0');
  return Buffer.concat([Buffer.from(`##${len}`), data, Buffer.from(crc(data).toString(16).toUpperCase().padStart(4, '0') + '\r\n')]);
}

// beijing formats a Date as YYYYMMDDhhmmss in UTC+8.
export function beijing(d) {
  const b = new Date(d.getTime() + 8 * 3600e3).toISOString();
  return b.slice(0, 19).replace(/[-T:]/g, '');
}

// send uploads each segment and resolves when every QN was answered (CN 9014).
export function send(url, segments, timeoutMs = 20000) {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const want = new Set(segments.map((s) => /QN=(\d+)/.exec(s)[1]));
    const sock = net.connect(Number(port), hostname, () => { for (const s of segments) sock.write(frame(s)); });
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`no 9014 answer for ${[...want]}`)); }, timeoutMs);
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('ascii');
      for (const m of buf.matchAll(/QN=(\d+);ST=91;CN=9014/g)) want.delete(m[1]);
      if (want.size === 0) { clearTimeout(timer); sock.end(); resolve(); }
    });
    sock.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}
