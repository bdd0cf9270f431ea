/* Footfall tracker: page views (single-page apps too), engaged time and scroll depth, custom
   events, outbound links, downloads and 404s, posted to /e. */
(function(w, d, n) {
  var s = d.currentScript, site = s && s.getAttribute('data-site'), h = w.history, out;
  var queued = (w.footfall && w.footfall.q) || [];
  try { out = w.localStorage.getItem('ff_optout') } catch (e) {}
  w.footfall = function() { queued.push(arguments) };
  if (!site || out || n.doNotTrack == '1' || w.doNotTrack == '1' || n.globalPrivacyControl) return;
  var api = new URL('e', s.src).href, IDLE = 3e4, ref = d.referrer, pv, url, ms, sent, since, last;
  var depth, sentDepth, AB = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
  // Automatic features, each switched off on the script tag with the value "off";
  // data-downloads may instead list the file extensions that count as downloads.
  function opt(k) { return s.getAttribute('data-' + k) != 'off' }
  var sc = opt('scroll'), dl = s.getAttribute('data-downloads');
  var exts = (dl && dl != 'off' ? dl : 'pdf,zip,gz,tgz,dmg,exe,msi,pkg,deb,rpm,apk,csv,xlsx,docx,pptx,mp3,mp4,iso').split(',');
  function now() { return performance.now() }
  // The page's consent and signed customer link (data-consent, data-cid, data-cs), read at
  // each send so a consent banner or a login can set them later. A browser driven by
  // automation says so (navigator.webdriver): its events are sent flagged, stored as bots.
  function send(e) {
    e.site = site; e.url = url; e.pageview_id = pv;
    if (n.webdriver) e.bot = true;
    var b = JSON.stringify(e), q = [], a = api;
    ['consent', 'cid', 'cs'].forEach(function(k) {
      var v = s.getAttribute('data-' + k);
      if (v) q.push(k + '=' + encodeURIComponent(v));
    });
    if (q.length) a += '?' + q.join('&');
    if (!(n.sendBeacon && n.sendBeacon(a, b)))
      fetch(a, {method: 'POST', body: b, keepalive: true, credentials: 'include'}).catch(function() {});
  }
  // footfall(name, {props: {...}}): a custom event of the current page view.
  // footfall('signout'): the customer signed out; this browser's later events are nobody's
  // until a new signed link, so the page's link goes too.
  function track(name, o) {
    if (name == 'signout') {
      s.removeAttribute('data-cid'); s.removeAttribute('data-cs');
      return send({kind: 'signout'});
    }
    var p = o && o.props, e = {kind: 'custom', event: String(name)};
    if (p) e.props = p;
    send(e);
  }
  // Engaged: the page is visible, the window focused, and the last interaction under IDLE ago.
  function tick(input) {
    var t = now();
    if (since != null) ms += Math.max(0, Math.min(t, last + IDLE) - since);
    if (input) last = t;
    since = d.visibilityState == 'visible' && d.hasFocus() && t - last < IDLE ? t : null;
  }
  // The largest share of the page seen so far, in percent.
  function scrolled() {
    var e = d.documentElement, t = Math.max(e.scrollHeight, d.body ? d.body.scrollHeight : 0);
    var p = t > 0 ? Math.round(Math.min(1, (w.scrollY + w.innerHeight) / t) * 100) : 100;
    if (sc && p > depth) depth = p;
  }
  // Reports the page view's engaged time and scroll depth so far; a later report supersedes.
  function flush() {
    tick();
    if (ms > sent || depth > sentDepth) {
      sent = ms; sentDepth = depth;
      var e = {kind: 'engagement', engaged_ms: Math.round(ms)};
      if (sc) e.scroll_depth = depth;
      send(e);
    }
  }
  function view() {
    var r = crypto.getRandomValues(new Uint8Array(22)), i = 0;
    for (pv = ''; i < 22; i++) pv += AB[r[i] % 62];
    url = location.href; ms = sent = 0; depth = sentDepth = 0; since = null; tick(1); scrolled();
    send({kind: 'pageview', referrer: ref, title: d.title, platform: ch.platform, platform_version: ch.platformVersion});
    // The site marks its error page with <meta name="footfall-404">.
    if (opt('404') && d.querySelector('meta[name="footfall-404"]')) track('404', {props: {path: location.pathname}});
  }
  function route() {
    if (location.href.split('#')[0] != url.split('#')[0]) { flush(); ref = url; view() }
  }
  ['pushState', 'replaceState'].forEach(function(m) {
    var f = h[m];
    h[m] = function() { var r = f.apply(this, arguments); route(); return r };
  });
  function on(t, f, x) { (x || w).addEventListener(t, f, {capture: true, passive: true}) }
  // data-footfall-event="Name" with data-footfall-prop-KEY="value" on the element.
  function tagged(el) {
    var p = {}, a = el.attributes, i = 0, k, P = 'data-footfall-prop-';
    for (; i < a.length; i++) if ((k = a[i].name).indexOf(P) == 0) p[k.slice(P.length)] = a[i].value;
    track(el.getAttribute('data-footfall-event'), {props: p});
  }
  // Clicks on tagged links and buttons, outbound links and downloads. The beacon outlives the
  // navigation that follows (sendBeacon, else fetch with keepalive).
  function click(ev) {
    var t = ev.target, el = t.closest && t.closest('[data-footfall-event]'), a = t.closest && t.closest('a[href]');
    if (el && el.tagName != 'FORM') tagged(el);
    if (!a || (ev.type == 'auxclick' && ev.button != 1) || !/^https?:$/.test(a.protocol)) return;
    var ext = a.pathname.split('.').pop().toLowerCase(), link = {props: {url: a.href}};
    if (opt('downloads') && a.pathname.indexOf('.') > 0 && exts.indexOf(ext) >= 0) track('File Download', link);
    else if (opt('outbound') && a.host != location.host) track('Outbound Link: Click', link);
  }
  on('click', click, d);
  on('auxclick', click, d);
  on('submit', function(ev) {
    var f = ev.target;
    if (f.getAttribute && f.getAttribute('data-footfall-event')) tagged(f);
  }, d);
  on('popstate', route);
  ['mousedown', 'mousemove', 'keydown', 'scroll', 'touchstart', 'wheel', 'focus'].forEach(function(t) {
    on(t, function() { tick(1) });
  });
  on('scroll', scrolled);
  on('blur', function() { tick() });
  on('visibilitychange', function() { d.visibilityState == 'hidden' ? flush() : tick(1) }, d);
  on('pagehide', flush);
  // Frozen user agents hide the OS version (Windows 11 says Windows 10): the client hints
  // tell it, so the first page view waits for them (a few milliseconds, where there are any).
  var ch = {}, u = n.userAgentData;
  function start() {
    view();
    w.footfall = track;
    queued.forEach(function(a) { track.apply(null, a) });
  }
  u && u.getHighEntropyValues
    ? u.getHighEntropyValues(['platformVersion']).then(function(v) { ch = v }, function() {}).then(start)
    : start();
})(window, document, navigator);
