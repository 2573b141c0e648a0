// audio: the alert beep, synthesised with WebAudio so no sound file is needed. Browsers only
// let a page make sound after a user gesture, so the context is created on the first click.

let ctx = null;
const MUTE_KEY = 'offsite.mute';

export function unlockAudio() {
  if (ctx) { if (ctx.state === 'suspended') ctx.resume().catch(() => {}); return; }
  const AC = window.AudioContext || window.webkitAudioContext;
  if (!AC) return;
  try { ctx = new AC(); } catch { ctx = null; }
}

export function isMuted() { return localStorage.getItem(MUTE_KEY) === '1'; }
export function setMuted(m) { localStorage.setItem(MUTE_KEY, m ? '1' : '0'); }

// beep plays two short tones for major, three higher ones for critical.
export function beep(severity) {
  if (isMuted() || !ctx) return;
  const n = severity === 'critical' ? 3 : 2;
  const freq = severity === 'critical' ? 988 : 784;
  const t0 = ctx.currentTime + 0.02;
  for (let i = 0; i < n; i++) {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = 'sine';
    osc.frequency.value = freq;
    const s = t0 + i * 0.22;
    gain.gain.setValueAtTime(0.0001, s);
    gain.gain.exponentialRampToValueAtTime(0.25, s + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, s + 0.16);
    osc.connect(gain).connect(ctx.destination);
    osc.start(s);
    osc.stop(s + 0.18);
    osc.onended = () => { osc.disconnect(); gain.disconnect(); };
  }
}
