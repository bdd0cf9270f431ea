/* Footfall tracker: page views (single-page apps too) and engaged time, posted to /e. */
(function(w, d, n) {
  var s = d.currentScript, site = s && s.getAttribute('data-site'), h = w.history, out;
  try { out = w.localStorage.getItem('ff_optout') } catch (e) {}
  if (!site || out || n.doNotTrack == '1' || w.doNotTrack == '1' || n.globalPrivacyControl) return;
  var api = new URL('e', s.src).href, IDLE = 3e4, ref = d.referrer, pv, url, ms, sent, since, last;
  var AB = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
  function now() { return performance.now() }
  // The page's consent and signed customer link (data-consent, data-cid, data-cs), read at
  // each send so a consent banner or a login can set them later.
  function send(e) {
    e.site = site; e.url = url; e.pageview_id = pv;
    var b = JSON.stringify(e), q = [], a = api;
    ['consent', 'cid', 'cs'].forEach(function(k) {
      var v = s.getAttribute('data-' + k);
      if (v) q.push(k + '=' + encodeURIComponent(v));
    });
    if (q.length) a += '?' + q.join('&');
    if (!(n.sendBeacon && n.sendBeacon(a, b)))
      fetch(a, {method: 'POST', body: b, keepalive: true, credentials: 'include'}).catch(function() {});
  }
  // Engaged: the page is visible, the window focused, and the last interaction under IDLE ago.
  function tick(input) {
    var t = now();
    if (since != null) ms += Math.max(0, Math.min(t, last + IDLE) - since);
    if (input) last = t;
    since = d.visibilityState == 'visible' && d.hasFocus() && t - last < IDLE ? t : null;
  }
  // Reports the page view's engaged time so far; a later report supersedes an earlier one.
  function flush() {
    tick();
    if (ms > sent) { sent = ms; send({kind: 'engagement', engaged_ms: Math.round(ms)}) }
  }
  function view() {
    var r = crypto.getRandomValues(new Uint8Array(22)), i = 0;
    for (pv = ''; i < 22; i++) pv += AB[r[i] % 62];
    url = location.href; ms = sent = 0; since = null; tick(1);
    send({kind: 'pageview', referrer: ref, title: d.title});
  }
  function route() {
    if (location.href.split('#')[0] != url.split('#')[0]) { flush(); ref = url; view() }
  }
  ['pushState', 'replaceState'].forEach(function(m) {
    var f = h[m];
    h[m] = function() { var r = f.apply(this, arguments); route(); return r };
  });
  function on(t, f, x) { (x || w).addEventListener(t, f, {capture: true, passive: true}) }
  on('popstate', route);
  ['mousedown', 'mousemove', 'keydown', 'scroll', 'touchstart', 'wheel', 'focus'].forEach(function(t) {
    on(t, function() { tick(1) });
  });
  on('blur', function() { tick() });
  on('visibilitychange', function() { d.visibilityState == 'hidden' ? flush() : tick(1) }, d);
  on('pagehide', flush);
  view();
})(window, document, navigator);
