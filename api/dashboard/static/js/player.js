// player: one WHEP (RFC 9725) viewer per wall tile.
//
// States: connecting → playing; offline (with the camera's reason) while no frames arrive;
// codec (the browser cannot decode the camera's codec); error. The player reconnects by itself
// with capped exponential backoff (1 s doubling to 30 s, with jitter) whenever the peer
// connection fails or frames stop for too long, and releases the RTCPeerConnection, its tracks
// and the WHEP session (DELETE on the Location) every time, so a wall can run for days.

import { api, session, ApiError } from './api.js';

const STATS_EVERY = 1000;     // ms between getStats polls
const STALL_AFTER = 4000;     // ms without a new decoded frame before the tile says so
const RESTART_AFTER = 20000;  // ms without frames before the session is torn down and redone
const FIRST_FRAME_WAIT = 15000;
const BACKOFF_MIN = 1000;
const BACKOFF_MAX = 30000;

export class WhepPlayer {
  constructor(video, cameraId, onChange) {
    this.video = video;
    this.cameraId = cameraId;
    this.onChange = onChange || (() => {});
    this.gen = 0;
    this.backoff = BACKOFF_MIN;
    this.state = 'idle';
    this.reason = '';
    this.frames = 0;
    this.attempts = 0;
    this.stopped = false;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  set(state, reason = '') {
    if (state === this.state && reason === this.reason) return;
    this.state = state;
    this.reason = reason;
    this.onChange(this);
  }

  async connect() {
    this.teardown();
    if (this.stopped) return;
    const gen = ++this.gen;
    this.attempts++;
    // A tile that knows why its camera is dark keeps saying so while it tries again.
    if (this.state !== 'offline' && this.state !== 'codec') this.set('connecting', '');
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
    this.pc = pc;
    this.abort = new AbortController();
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.ontrack = (ev) => {
      if (gen !== this.gen) return;
      if (!this.stream) this.stream = new MediaStream();
      this.stream.addTrack(ev.track);
      if (this.video.srcObject !== this.stream) this.video.srcObject = this.stream;
      this.video.play().catch(() => {});
    };
    pc.onconnectionstatechange = () => {
      if (gen !== this.gen) return;
      const s = pc.connectionState;
      if (s === 'failed' || s === 'closed') this.retry('connection_' + s);
      else if (s === 'disconnected') {
        clearTimeout(this.discTimer);
        this.discTimer = setTimeout(() => { if (gen === this.gen && pc.connectionState === 'disconnected') this.retry('connection_lost'); }, 4000);
      }
    };
    try {
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      await waitIce(pc, 1500);
      if (gen !== this.gen) return;
      const url = `/api/v1/cameras/${encodeURIComponent(this.cameraId)}/whep`;
      const res = await fetch(url, {
        method: 'POST', body: pc.localDescription.sdp, signal: this.abort.signal,
        headers: { 'Content-Type': 'application/sdp', Accept: 'application/sdp', Authorization: `Bearer ${session.token}` },
      });
      if (gen !== this.gen) return;
      if (res.status !== 201 && res.status !== 200) {
        let body = null; const text = await res.text();
        try { body = JSON.parse(text); } catch { /* not JSON */ }
        throw new ApiError(res.status, body?.error?.code, body?.error?.message || text.slice(0, 160), body);
      }
      const loc = res.headers.get('Location');
      this.location = loc ? new URL(loc, new URL(url, location.origin)).pathname + new URL(loc, new URL(url, location.origin)).search : '';
      const answer = await res.text();
      if (gen !== this.gen) return;
      try {
        await pc.setRemoteDescription({ type: 'answer', sdp: answer });
      } catch (e) {
        this.set('codec', e.message);
        this.schedule(60000); // a codec does not change quickly; look again in a minute
        return;
      }
      this.startedAt = performance.now();
      this.lastFrameAt = 0;
      this.lastFrames = 0;
      this.watch(gen);
    } catch (e) {
      if (gen !== this.gen || e.name === 'AbortError') return;
      this.failed(e);
    }
  }

  failed(e) {
    if (e.status === 401) { this.set('error', e.message); this.stopped = true; window.dispatchEvent(new Event('offsite:unauthorized')); return; }
    if (e.code === 'codec_unsupported' || e.code === 'codec_not_supported' || (e.code || '').startsWith('codec')) {
      this.set('codec', e.message);
      this.schedule(60000);
      return;
    }
    // A 404 of the route itself (no video relay mounted) is not a camera problem.
    if (e.status === 404) { this.set('offline', e.code === 'camera_not_found' ? e.message : 'no_relay'); this.schedule(); return; }
    this.set('offline', e.message || e.code || 'error');
    this.schedule();
  }

  retry(why) {
    if (this.stopped) return;
    this.teardown();
    if (this.state !== 'offline' && this.state !== 'codec') this.set('connecting', why);
    this.schedule();
  }

  schedule(delay) {
    clearTimeout(this.retryTimer);
    if (this.stopped) return;
    const base = delay || this.backoff;
    const wait = base * (0.8 + Math.random() * 0.4);
    if (!delay) this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX);
    this.nextRetryAt = Date.now() + wait;
    this.retryTimer = setTimeout(() => this.connect(), wait);
  }

  // watch polls getStats: frames decoded moving → playing; stuck → ask the camera's status
  // for the reason; stuck for long → reconnect.
  watch(gen) {
    clearInterval(this.statsTimer);
    this.statsTimer = setInterval(async () => {
      if (gen !== this.gen || !this.pc) return;
      let frames = 0; let received = 0; let decoder = '';
      try {
        const stats = await this.pc.getStats();
        stats.forEach((r) => {
          if (r.type === 'inbound-rtp' && (r.kind === 'video' || r.mediaType === 'video')) {
            frames = r.framesDecoded || 0; received = r.framesReceived || r.packetsReceived || 0;
            decoder = r.decoderImplementation || '';
          }
        });
      } catch { return; }
      if (gen !== this.gen) return;
      const now = performance.now();
      this.frames = frames;
      if (frames > this.lastFrames) {
        this.lastFrames = frames;
        this.lastFrameAt = now;
        this.backoff = BACKOFF_MIN;
        this.set('playing', '');
        this.onChange(this);
        return;
      }
      const since = this.lastFrameAt || this.startedAt;
      const quiet = now - since;
      if (!this.lastFrameAt && received > 30 && frames === 0 && quiet > 6000) {
        this.set('codec', decoder ? '' : 'no_decoder');
      } else if (quiet > (this.lastFrameAt ? STALL_AFTER : Math.min(STALL_AFTER * 1.5, FIRST_FRAME_WAIT))) {
        await this.explain(gen);
      }
      if (quiet > RESTART_AFTER) this.retry('no_frames');
      this.onChange(this);
    }, STATS_EVERY);
  }

  // explain asks the gateway why the camera sends nothing (GET /api/v1/cameras/{id}).
  async explain(gen) {
    const now = Date.now();
    if (this.explainedAt && now - this.explainedAt < 3000) return;
    this.explainedAt = now;
    let reason = ''; let st = '';
    try {
      const c = await api(`cameras/${encodeURIComponent(this.cameraId)}`, { signal: this.abort?.signal });
      const s = c?.status && typeof c.status === 'object' ? c.status : c;
      st = String(s?.state || '');
      reason = c?.reason_code || s?.reason || s?.problem?.message || '';
      if (s?.problem?.code && String(s.problem.code).startsWith('codec')) { if (gen === this.gen) this.set('codec', s.problem.message || ''); return; }
    } catch { /* no status endpoint: say only that no picture arrives */ }
    if (gen !== this.gen) return;
    this.set('offline', reason || (st && st !== 'online' ? st : 'no_frames'));
  }

  teardown() {
    clearInterval(this.statsTimer);
    clearTimeout(this.discTimer);
    clearTimeout(this.retryTimer);
    this.gen++;
    if (this.abort) { this.abort.abort(); this.abort = null; }
    if (this.location) {
      const loc = this.location;
      this.location = '';
      fetch(loc, { method: 'DELETE', keepalive: true, headers: { Authorization: `Bearer ${session.token}` } }).catch(() => {});
    }
    if (this.pc) {
      const pc = this.pc;
      this.pc = null;
      pc.ontrack = null; pc.onconnectionstatechange = null;
      for (const r of pc.getReceivers()) { try { r.track?.stop(); } catch { /* already ended */ } }
      try { pc.close(); } catch { /* already closed */ }
    }
    if (this.stream) {
      for (const tr of this.stream.getTracks()) { tr.stop(); this.stream.removeTrack(tr); }
      this.stream = null;
    }
    if (this.video) {
      this.video.pause();
      this.video.srcObject = null;
      this.video.removeAttribute('src');
    }
    this.frames = 0;
  }

  stop() {
    this.stopped = true;
    this.teardown();
    this.set('idle', '');
  }
}

function waitIce(pc, ms) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { clearTimeout(timer); pc.removeEventListener('icegatheringstatechange', check); resolve(); };
    const check = () => { if (pc.iceGatheringState === 'complete') done(); };
    const timer = setTimeout(done, ms);
    pc.addEventListener('icegatheringstatechange', check);
  });
}
