/**
 * The classroom page's HTML: fixed markup, filled in by page.js with textContent only. Embedded as
 * a string (as are page-css.ts and page-script.ts) because tsc is this project's only build step:
 * a .html file beside the sources would not be copied to dist/, and the published package holds
 * only dist/src. No inline script or style: the Content-Security-Policy allows neither.
 */
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lab-server: live classroom view</title>
<link rel="stylesheet" href="/page.css">
<script src="/page.js" defer></script>
</head>
<body>
<header>
  <h1>lab-server <span class="subtitle">live classroom view</span></h1>
  <span id="status" class="status">connecting…</span>
  <button id="big" type="button" aria-pressed="false">Large type</button>
</header>
<p id="sampling" class="sampling" hidden></p>
<main>
  <section id="lab-panel" class="panel area-lab" hidden>
    <h2>Lab</h2>
    <ol id="lab" class="lab"></ol>
  </section>
  <section class="panel area-services">
    <h2>Services</h2>
    <ul id="services" class="services"></ul>
    <dl id="totals" class="totals"></dl>
  </section>
  <section class="panel area-states">
    <h2>TCP states <span class="hint">(RFC 793): the server's side of each connection</span></h2>
    <svg id="diagram" class="diagram" viewBox="0 0 660 600" role="img" aria-label="RFC 793 TCP state diagram with live counts"></svg>
    <p class="hint">Numbers: connections in each state now. Outlined: the states the selected connection went through (server's side bold, client's dashed). SYN_SENT and SYN_RECV are never counted: the kernel finishes the handshake before accept() returns.</p>
  </section>
  <section class="panel area-table">
    <h2>Connections <span class="hint">(click one for its ladder)</span></h2>
    <div class="table-scroll">
    <table id="connections">
      <thead><tr><th>#</th><th>service</th><th>client</th><th>server</th><th>age</th><th>bytes in/out</th><th>closed first</th><th>server's state</th><th>last lines</th></tr></thead>
      <tbody></tbody>
    </table>
    </div>
  </section>
  <section class="panel area-ladder">
    <h2>Ladder <span id="ladder-title" class="hint">select a connection above</span></h2>
    <svg id="ladder" class="ladder" viewBox="0 0 760 80" role="img" aria-label="ladder diagram of the selected connection"></svg>
  </section>
  <section class="panel area-troubles">
    <h2>Refusals and UDP drops</h2>
    <ul id="troubles" class="log"></ul>
  </section>
  <section class="panel area-events">
    <h2>Recent events</h2>
    <ul id="events" class="log"></ul>
  </section>
</main>
</body>
</html>
`;
