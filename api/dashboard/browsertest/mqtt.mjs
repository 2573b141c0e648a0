// A minimal MQTT 3.1.1 publisher (CONNECT, PUBLISH QoS 1, DISCONNECT) so the harness needs no
// MQTT package: enough to publish one reading as a sensor would.
import net from 'node:net';

function encLen(n) {
  const out = [];
  do { let b = n % 128; n = Math.floor(n / 128); if (n > 0) b |= 0x80; out.push(b); } while (n > 0);
  return Buffer.from(out);
}
const str = (s) => { const b = Buffer.from(s, 'utf8'); const l = Buffer.alloc(2); l.writeUInt16BE(b.length); return Buffer.concat([l, b]); };
const packet = (type, body) => Buffer.concat([Buffer.from([type]), encLen(body.length), body]);

// publish sends payload to topic on url (tcp://host:port) and resolves once the broker
// acknowledged it (PUBACK).
export function publish(url, { username, password, clientId, topic, payload, timeoutMs = 5000 }) {
  const u = new URL(url.replace(/^mqtt:/, 'tcp:'));
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(u.port || 1883), u.hostname);
    const timer = setTimeout(() => { sock.destroy(); reject(new Error('mqtt: timeout')); }, timeoutMs);
    let buf = Buffer.alloc(0);
    const fail = (e) => { clearTimeout(timer); sock.destroy(); reject(e); };
    sock.on('error', fail);
    sock.on('connect', () => {
      let flags = 0x02;
      const parts = [str('MQTT'), Buffer.from([4, 0, 0, 30]), str(clientId || `offsite-test-${process.pid}`)];
      if (username) { flags |= 0x80; parts.push(str(username)); }
      if (password) { flags |= 0x40; parts.push(str(password)); }
      parts[1][1] = flags;
      sock.write(packet(0x10, Buffer.concat(parts)));
    });
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2) {
        const type = buf[0] >> 4; const len = buf[1];
        if (buf.length < 2 + len) return;
        const body = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        if (type === 2) {
          if (body[1] !== 0) return fail(new Error(`mqtt: connection refused, code ${body[1]}`));
          const id = Buffer.from([0, 1]);
          sock.write(packet(0x32, Buffer.concat([str(topic), id, Buffer.from(payload)])));
        } else if (type === 4) {
          clearTimeout(timer);
          sock.end(Buffer.from([0xe0, 0]));
          resolve();
        }
      }
    });
  });
}
