/**
 * The classroom page's script, as the browser runs it (plain JavaScript, no build step). It reads
 * /events with EventSource and draws with the DOM: every piece of data goes in with textContent
 * or an SVG attribute, never as markup, so a client's `<script>` is shown as the text it is.
 * (No backquotes or dollar-braces below: this is a template string.)
 */
export const PAGE_SCRIPT = String.raw`'use strict';
(function () {
  var SVG_NS = 'http://www.w3.org/2000/svg';
  var rows = new Map();
  var counts = {};
  var serverOffsetMs = 0;
  var selectedKey = null;
  var ladder = null;
  var labSeen = false;

  function byId(id) { return document.getElementById(id); }
  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function svgElement(tag, attributes, className, text) {
    var node = document.createElementNS(SVG_NS, tag);
    for (var name in attributes) node.setAttribute(name, String(attributes[name]));
    if (className) node.setAttribute('class', className);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function serverNow() { return Date.now() - serverOffsetMs; }
  function seconds(ms) {
    var s = Math.max(0, ms) / 1000;
    if (s < 10) return s.toFixed(1) + ' s';
    if (s < 120) return Math.floor(s) + ' s';
    return Math.floor(s / 60) + ' min ' + Math.floor(s % 60) + ' s';
  }
  function clockTime(epochMs) {
    var d = new Date(epochMs);
    function two(n) { return (n < 10 ? '0' : '') + n; }
    var ms = String(d.getMilliseconds()).padStart(3, '0');
    return two(d.getHours()) + ':' + two(d.getMinutes()) + ':' + two(d.getSeconds()) + '.' + ms;
  }

  // The RFC 793 diagram (figure 6), drawn once; its counts and highlights change.
  var BOX_W = 150, BOX_H = 56;
  var PLACES = {
    CLOSED: [330, 36], LISTEN: [330, 124], SYN_RECV: [110, 212], SYN_SENT: [550, 212],
    ESTABLISHED: [330, 300], FIN_WAIT1: [110, 388], CLOSE_WAIT: [550, 388],
    FIN_WAIT2: [110, 476], CLOSING: [330, 476], LAST_ACK: [550, 476],
    TIME_WAIT: [220, 564], CLOSED_END: [550, 564]
  };
  var EDGES = [
    ['CLOSED', 'LISTEN', 'listen()', 'left'], ['CLOSED', 'SYN_SENT', 'connect(): SYN'],
    ['LISTEN', 'SYN_RECV', 'rcv SYN: SYN+ACK'], ['SYN_SENT', 'ESTABLISHED', 'rcv SYN+ACK: ACK'],
    ['SYN_RECV', 'ESTABLISHED', 'rcv ACK'], ['ESTABLISHED', 'FIN_WAIT1', 'close(): FIN'],
    ['ESTABLISHED', 'CLOSE_WAIT', 'rcv FIN: ACK'], ['FIN_WAIT1', 'FIN_WAIT2', 'rcv ACK'],
    ['FIN_WAIT1', 'CLOSING', 'rcv FIN: ACK'], ['FIN_WAIT2', 'TIME_WAIT', 'rcv FIN: ACK', 'left'],
    ['CLOSING', 'TIME_WAIT', 'rcv ACK'], ['CLOSE_WAIT', 'LAST_ACK', 'close(): FIN'],
    ['LAST_ACK', 'CLOSED_END', 'rcv ACK'], ['TIME_WAIT', 'CLOSED_END', '60 s (2MSL)']
  ];
  var boxes = {};

  function arrowHead(x, y, dx, dy, className) {
    var length = Math.hypot(dx, dy) || 1, ux = dx / length, uy = dy / length, size = 9;
    var points = [x, y, x - ux * size - uy * size / 2, y - uy * size + ux * size / 2, x - ux * size + uy * size / 2, y - uy * size - ux * size / 2];
    return svgElement('polygon', { points: points.join(' ') }, className);
  }
  /** Where the line from a box's centre towards (dx, dy) leaves the box. */
  function boxEdge(dx, dy) {
    var t = Math.min(BOX_W / 2 / (Math.abs(dx) || 1e-9), BOX_H / 2 / (Math.abs(dy) || 1e-9));
    return [dx * t, dy * t];
  }
  function drawDiagram() {
    var svg = byId('diagram');
    EDGES.forEach(function (edge) {
      var from = PLACES[edge[0]], to = PLACES[edge[1]];
      var dx = to[0] - from[0], dy = to[1] - from[1];
      var out = boxEdge(dx, dy), back = boxEdge(-dx, -dy);
      var x1 = from[0] + out[0], y1 = from[1] + out[1], x2 = to[0] + back[0], y2 = to[1] + back[1];
      svg.appendChild(svgElement('line', { x1: x1, y1: y1, x2: x2, y2: y2 }, 'edge'));
      svg.appendChild(arrowHead(x2, y2, dx, dy, 'head'));
      // Beside the line (on the side given, else the side it leans away from), or above a level one.
      var side = edge[3] || (dy === 0 ? 'above' : dx < 0 ? 'left' : 'right');
      var midX = (x1 + x2) / 2, midY = (y1 + y2) / 2;
      var label = side === 'above'
        ? svgElement('text', { x: midX, y: midY - 6, 'text-anchor': 'middle' }, 'edge-label', edge[2])
        : svgElement('text', { x: midX + (side === 'left' ? -6 : 6), y: midY + 4, 'text-anchor': side === 'left' ? 'end' : 'start' }, 'edge-label', edge[2]);
      svg.appendChild(label);
    });
    Object.keys(PLACES).forEach(function (state) {
      var place = PLACES[state];
      var group = svgElement('g', { 'data-state': state });
      group.appendChild(svgElement('rect', { x: place[0] - BOX_W / 2, y: place[1] - BOX_H / 2, width: BOX_W, height: BOX_H, rx: 8 }, 'box'));
      group.appendChild(svgElement('text', { x: place[0], y: place[1] - 6, 'text-anchor': 'middle' }, 'name', state === 'CLOSED_END' ? 'CLOSED' : state));
      var count = svgElement('text', { x: place[0], y: place[1] + 20, 'text-anchor': 'middle' }, 'count none', '–');
      group.appendChild(count);
      svg.appendChild(group);
      boxes[state] = { group: group, count: count };
    });
  }
  function paintDiagram() {
    var row = selectedKey === null ? undefined : rows.get(selectedKey);
    var path = ladder && row && ladder.key === row.key ? ladder.paths : { client: [], server: [] };
    function placesOf(states) {
      return states.map(function (state, index) { return state === 'CLOSED' && index > 0 ? 'CLOSED_END' : state; });
    }
    var serverPath = placesOf(path.server), clientPath = placesOf(path.client);
    var now = row ? currentState(row).place : null;
    Object.keys(boxes).forEach(function (state) {
      var box = boxes[state];
      var value = state === 'CLOSED_END' ? undefined : counts[state];
      box.count.textContent = value === undefined ? '–' : String(value);
      box.count.setAttribute('class', value === undefined ? 'count none' : 'count');
      var classes = [];
      if (value) classes.push('busy');
      if (clientPath.indexOf(state) >= 0) classes.push('client-path');
      if (serverPath.indexOf(state) >= 0) classes.push('server-path');
      if (now === state) classes.push('server-now');
      box.group.setAttribute('class', classes.join(' '));
    });
  }

  /** The server's side of a row now: its state, the text shown, and its place in the diagram. */
  function currentState(row) {
    if (row.state !== 'closed' && !row.kernel) return { name: row.state, text: row.state, place: row.state };
    if (!row.kernel) {
      return { name: 'CLOSED', text: 'closed; kernel state not read (yet)', place: null };
    }
    var k = row.kernel;
    if (k.state === null) return { name: 'CLOSED', text: 'CLOSED: nothing left', place: 'CLOSED_END' };
    if (k.remainingMs !== null) {
      var left = k.remainingMs - (serverNow() - k.readAt);
      if (left <= 0) return { name: 'CLOSED', text: 'CLOSED (' + k.state + ' over)', place: 'CLOSED_END' };
      return { name: k.state, text: k.state + ' ' + seconds(left) + ' left', place: k.state };
    }
    return { name: k.state, text: k.state, place: k.state };
  }

  function paintTable() {
    var body = byId('connections').tBodies[0];
    var fresh = document.createDocumentFragment();
    var keys = Array.from(rows.keys()).reverse();
    keys.forEach(function (key) {
      var row = rows.get(key);
      var tr = element('tr');
      tr.setAttribute('data-key', key);
      if (key === selectedKey) tr.className = 'selected';
      var state = currentState(row);
      var bytes = row.bytesIn === undefined ? 'open' : row.bytesIn + ' / ' + row.bytesOut;
      var closedBy = row.closedBy === undefined ? '' : row.closedBy + (row.how === 'rst' ? ' (RST)' : '');
      var client = row.client + (row.host ? ' (' + row.host + ')' : '');
      var cells = [[row.label], [row.protocol], [client, 'pair'], [row.server, 'pair'], [seconds(serverNow() - row.openedAt)], [bytes], [closedBy], [state.text, 'st st-' + state.name], [row.lines.join('\n'), 'lines']];
      cells.forEach(function (cell) { tr.appendChild(element('td', cell[1], cell[0])); });
      if (row.kernel) tr.lastChild.previousSibling.setAttribute('title', row.kernel.explanation);
      fresh.appendChild(tr);
    });
    body.replaceChildren(fresh);
  }

  function paintLadder() {
    var svg = byId('ladder');
    var title = byId('ladder-title');
    svg.replaceChildren();
    if (!ladder) { svg.setAttribute('viewBox', '0 0 760 40'); return; }
    title.textContent = (ladder.source === 'captured' ? 'captured by tcpdump' : "inferred from the server's events (no capture): the handshake is drawn when accept() returned, ACKs of data are left out") + ': ' + (rows.has(ladder.key) ? rows.get(ladder.key).label : ladder.key);
    var left = 220, right = 540, top = 50, gap = 36;
    var height = top + ladder.steps.length * gap + 30;
    svg.setAttribute('viewBox', '0 0 760 ' + height);
    svg.appendChild(svgElement('text', { x: left, y: 18, 'text-anchor': 'middle' }, 'end-name', 'client ' + ladder.client));
    svg.appendChild(svgElement('text', { x: right, y: 18, 'text-anchor': 'middle' }, 'end-name', 'server ' + ladder.server));
    svg.appendChild(svgElement('line', { x1: left, y1: 28, x2: left, y2: height - 10 }, 'end'));
    svg.appendChild(svgElement('line', { x1: right, y1: 28, x2: right, y2: height - 10 }, 'end'));
    var before = { client: ladder.paths.client[0], server: ladder.paths.server[0] };
    svg.appendChild(svgElement('text', { x: left - 10, y: top - 12, 'text-anchor': 'end' }, 'state', before.client));
    svg.appendChild(svgElement('text', { x: right + 10, y: top - 12 }, 'state', before.server));
    ladder.steps.forEach(function (step, index) {
      var y1 = top + index * gap, y2 = y1 + gap - 12;
      var fromServer = step.sender === 'server';
      var x1 = fromServer ? right : left, x2 = fromServer ? left : right;
      var kind = 'seg' + (fromServer ? ' from-server' : '') + (step.flags.indexOf('RST') >= 0 ? ' rst' : '');
      svg.appendChild(svgElement('line', { x1: x1, y1: y1, x2: x2, y2: y2 }, kind));
      svg.appendChild(arrowHead(x2, y2, x2 - x1, y2 - y1, kind.replace('seg', 'head')));
      var text = step.flags.join('+') + ' seq=' + step.seq + (step.ack !== undefined ? ' ack=' + step.ack : '') + (step.len ? ' len=' + step.len : '');
      svg.appendChild(svgElement('text', { x: (left + right) / 2, y: (y1 + y2) / 2 - 5, 'text-anchor': 'middle' }, 'seg-label', text));
      if (step.notes.length) svg.appendChild(svgElement('text', { x: (left + right) / 2, y: (y1 + y2) / 2 + 14, 'text-anchor': 'middle' }, 'note', step.notes.join(', ')));
      if (step.clientState !== before.client) svg.appendChild(svgElement('text', { x: left - 10, y: y2 + 4, 'text-anchor': 'end' }, 'state', step.clientState));
      if (step.serverState !== before.server) svg.appendChild(svgElement('text', { x: right + 10, y: y2 + 4 }, 'state', step.serverState));
      before = { client: step.clientState, server: step.serverState };
    });
  }

  function loadLadder(key) {
    fetch('/ladder?key=' + encodeURIComponent(key)).then(function (response) {
      return response.ok ? response.json() : null;
    }).then(function (json) {
      if (key !== selectedKey) return;
      ladder = json;
      paintLadder();
      paintDiagram();
    }).catch(function () {});
  }

  function paintServices(update) {
    var list = byId('services');
    list.replaceChildren();
    update.services.forEach(function (s) {
      list.appendChild(element('li', '', s.protocol + (s.rfc ? ' (RFC ' + s.rfc + ')' : '') + '  ' + s.socket + (s.transport === 'udp' ? '/udp' : '') + (s.transport === 'tcp' ? '  LISTEN' : '')));
    });
    var t = update.totals;
    var totals = [['accepted', t.accepted], ['open now', t.open], ['closed', t.closed]];
    Object.keys(t.refused).forEach(function (reason) { totals.push(['refused (' + reason + ')', t.refused[reason]]); });
    if (t.udp.received) totals.push(['UDP datagrams', t.udp.received + ' in, ' + t.udp.answered + ' answered']);
    Object.keys(t.udp.dropped).forEach(function (reason) { totals.push(['UDP dropped (' + reason + ')', t.udp.dropped[reason]]); });
    var dl = byId('totals');
    dl.replaceChildren();
    totals.forEach(function (pair) { dl.appendChild(element('dt', '', pair[0])); dl.appendChild(element('dd', '', String(pair[1]))); });
  }

  function paintSampling(s) {
    var parts = [];
    if (s.eventsNotListed) parts.push(s.eventsNotListed + ' events not listed (at most 40 per update)');
    if (s.rowsDropped) parts.push('the table keeps the newest ' + s.maxRows + ' connections (' + s.rowsDropped + ' left it; the counts still include them)');
    if (s.kernelStatesSkipped) parts.push('kernel states were read for a sample (' + s.kernelStatesSkipped + ' closed connections not looked up)');
    var note = byId('sampling');
    note.hidden = parts.length === 0;
    note.textContent = 'Under load this page is sampled: it is updated 4 times a second; ' + parts.join('; ') + '.';
  }

  function addLog(listId, entries, limit) {
    var list = byId(listId);
    entries.forEach(function (entry) {
      var li = element('li', entry.kind);
      li.appendChild(element('span', 'time', clockTime(entry.time)));
      li.appendChild(document.createTextNode(entry.text));
      list.insertBefore(li, list.firstChild);
    });
    while (list.childNodes.length > limit) list.removeChild(list.lastChild);
  }

  function labClass(line) {
    if (/^\d+\. /.test(line)) return 'step';
    if (/^\s*✓/.test(line)) return 'agree';
    if (/^\s*✗/.test(line)) return 'disagree';
    if (/^passed:/.test(line)) return 'passed';
    if (/^FAILED:/.test(line)) return 'failed';
    return '';
  }
  function addLab(lines) {
    if (lines.length === 0) return;
    var list = byId('lab');
    if (!labSeen) { labSeen = true; byId('lab-panel').hidden = false; }
    lines.forEach(function (line) { list.appendChild(element('li', labClass(line), line)); });
    list.scrollTop = list.scrollHeight;
  }

  function apply(update) {
    serverOffsetMs = Date.now() - update.now;
    if (update.full) {
      rows.clear();
      byId('events').replaceChildren();
      byId('troubles').replaceChildren();
      byId('lab').replaceChildren();
    }
    update.removed.forEach(function (key) { rows.delete(key); });
    var selectedChanged = false;
    update.rows.forEach(function (row) {
      rows.set(row.key, row);
      if (row.key === selectedKey) selectedChanged = true;
    });
    counts = update.counts;
    paintServices(update);
    paintSampling(update.sampling);
    addLog('events', update.events, 200);
    addLog('troubles', update.troubles, 20);
    addLab(update.lab);
    if (selectedChanged) loadLadder(selectedKey);
    paintTable();
    paintDiagram();
  }

  function select(key) {
    selectedKey = key;
    ladder = null;
    paintTable();
    paintLadder();
    paintDiagram();
    loadLadder(key);
  }

  function setBig(on) {
    document.body.classList.toggle('big', on);
    byId('big').setAttribute('aria-pressed', on ? 'true' : 'false');
    try { localStorage.setItem('lab-server-big', on ? '1' : ''); } catch (e) { /* private mode */ }
  }

  function start() {
    drawDiagram();
    var big = new URLSearchParams(location.search).has('big');
    try { big = big || localStorage.getItem('lab-server-big') === '1'; } catch (e) { /* private mode */ }
    setBig(big);
    byId('big').addEventListener('click', function () { setBig(!document.body.classList.contains('big')); });
    byId('connections').tBodies[0].addEventListener('click', function (event) {
      var tr = event.target.closest('tr');
      if (tr) select(tr.getAttribute('data-key'));
    });
    var status = byId('status');
    var source = new EventSource('/events');
    source.addEventListener('open', function () { status.textContent = 'live'; status.className = 'status live'; });
    source.addEventListener('error', function () { status.textContent = 'reconnecting…'; status.className = 'status down'; });
    source.addEventListener('update', function (event) { apply(JSON.parse(event.data)); });
    // Ages and TIME_WAIT countdowns move on between updates.
    setInterval(function () { paintTable(); paintDiagram(); }, 1000);
  }
  start();
})();
`;
