/** The classroom page's style sheet: high contrast by default, and a large type for a projector. */
export const PAGE_CSS = `
:root { --fg: #000; --bg: #fff; --muted: #444; --line: #777; --accent: #0047b3; --warn: #a30000; --ok: #006b1f; --wait: #7a4d00; --panel: #f4f4f4; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.4 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
body.big { font-size: 24px; }
header { display: flex; align-items: center; gap: 1em; padding: 0.4em 1em; border-bottom: 2px solid var(--fg); }
h1 { margin: 0; font-size: 1.4em; }
h1 .subtitle { font-weight: normal; color: var(--muted); }
h2 { margin: 0 0 0.4em; font-size: 1.1em; }
.hint { font-weight: normal; font-size: 0.85em; color: var(--muted); }
.status { padding: 0.1em 0.6em; border: 2px solid var(--muted); border-radius: 1em; }
.status.live { border-color: var(--ok); color: var(--ok); }
.status.down { border-color: var(--warn); color: var(--warn); }
button { font: inherit; padding: 0.2em 0.8em; border: 2px solid var(--fg); background: var(--bg); color: var(--fg); border-radius: 0.3em; cursor: pointer; margin-left: auto; }
button[aria-pressed="true"] { background: var(--fg); color: var(--bg); }
.sampling { margin: 0; padding: 0.3em 1em; background: #fff3c4; border-bottom: 1px solid var(--wait); }
main {
  display: grid; gap: 0.8em; padding: 0.8em;
  grid-template-columns: minmax(16em, 1fr) minmax(0, 2fr);
  /* The diagram spans two rows on the right: the second (refusals) takes the extra height. */
  grid-template-rows: auto auto 1fr auto auto;
  grid-template-areas: "lab lab" "services states" "troubles states" "table table" "events ladder";
  align-items: start;
}
@media (max-width: 60em) { main { grid-template-columns: 1fr; grid-template-areas: "lab" "services" "states" "troubles" "table" "ladder" "events"; } }
.area-lab { grid-area: lab; } .area-services { grid-area: services; } .area-states { grid-area: states; }
.area-table { grid-area: table; } .area-ladder { grid-area: ladder; } .area-events { grid-area: events; } .area-troubles { grid-area: troubles; }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 0.3em; padding: 0.6em; min-width: 0; }
.services { list-style: none; margin: 0; padding: 0; font-family: ui-monospace, monospace; }
.totals { display: grid; grid-template-columns: auto 1fr; gap: 0 0.8em; margin: 0.6em 0 0; }
.totals dt { color: var(--muted); }
.totals dd { margin: 0; font-weight: bold; }
.table-scroll { overflow: auto; max-height: 24em; }
body.big .table-scroll { max-height: none; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 0.15em 0.5em; border-bottom: 1px solid var(--line); white-space: nowrap; }
td.pair, td.lines { font-family: ui-monospace, monospace; }
td.lines { white-space: pre; max-width: 28em; overflow: hidden; text-overflow: ellipsis; }
tbody tr { cursor: pointer; }
tbody tr:hover { background: #e4ecff; }
tbody tr.selected { background: #cddcff; outline: 2px solid var(--accent); }
.st { font-weight: bold; }
.st-ESTABLISHED { color: var(--ok); }
.st-TIME_WAIT, .st-FIN_WAIT2, .st-FIN_WAIT1, .st-CLOSING, .st-LAST_ACK, .st-CLOSE_WAIT { color: var(--wait); }
.st-CLOSED { color: var(--muted); }
.log { list-style: none; margin: 0; padding: 0; max-height: 24em; overflow: auto; font-family: ui-monospace, monospace; font-size: 0.9em; }
.log li { border-bottom: 1px solid #ddd; white-space: pre-wrap; overflow-wrap: anywhere; }
.log .time { color: var(--muted); margin-right: 0.6em; }
.log .refusal, .log .udp, .log .error { color: var(--warn); }
.log .kernel { color: var(--wait); }
.lab { margin: 0; padding: 0; list-style: none; font-family: ui-monospace, monospace; max-height: 30em; overflow: auto; }
.lab li { white-space: pre-wrap; }
.lab .step { font-weight: bold; margin-top: 0.5em; }
.lab .agree { color: var(--ok); }
.lab .disagree, .lab .failed { color: var(--warn); font-weight: bold; }
.lab .passed { color: var(--ok); font-weight: bold; }
svg { width: 100%; height: auto; display: block; }
svg text { font-family: system-ui, sans-serif; fill: var(--fg); }
.diagram { max-height: 40em; }
.diagram .edge { stroke: var(--line); stroke-width: 1.5; fill: none; }
.diagram .edge-label { font-size: 13px; fill: var(--muted); }
.diagram .box { fill: #fff; stroke: var(--fg); stroke-width: 1.5; }
.diagram .name { font-size: 16px; font-weight: bold; }
.diagram .count { font-size: 24px; font-weight: bold; fill: var(--accent); }
.diagram .count.none { fill: #999; font-size: 16px; }
.diagram g.busy .box { fill: #e4ecff; }
.diagram g.client-path .box { stroke: var(--wait); stroke-width: 3; stroke-dasharray: 6 4; }
.diagram g.server-path .box { stroke: var(--accent); stroke-width: 5; stroke-dasharray: none; }
.diagram g.server-now .box { fill: #ffe08a; }
.ladder .end { stroke: var(--fg); stroke-width: 2; }
.ladder .end-name { font-weight: bold; font-size: 14px; }
.ladder .seg { stroke: var(--accent); stroke-width: 2; fill: none; }
.ladder .seg.from-server { stroke: var(--ok); }
.ladder .seg.rst { stroke: var(--warn); }
.ladder .seg-label { font-size: 12px; font-family: ui-monospace, monospace; }
.ladder .state { font-size: 12px; font-weight: bold; fill: var(--wait); }
.ladder .note { font-size: 12px; fill: var(--muted); }
.ladder .head { fill: var(--accent); }
.ladder .head.from-server { fill: var(--ok); }
.ladder .head.rst { fill: var(--warn); }
.diagram .head { fill: var(--line); }
`;
