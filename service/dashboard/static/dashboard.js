// LURE dashboard: polls the JSON API every two seconds and updates tables and charts in place.
"use strict";

const POLL_MS = 2000;
const state = { models: [], selected: null, charts: {}, lastRefresh: null };
window.lureDashboard = state;  // read by the browser test

// The API key lives in this browser's localStorage only; every request sends it as a bearer token.
const KEY_STORAGE = "lureApiKey";
function authHeaders() {
  const key = localStorage.getItem(KEY_STORAGE);
  return key ? { authorization: `Bearer ${key}` } : {};
}

async function getJSON(path) {
  const response = await fetch(path, { headers: { accept: "application/json", ...authHeaders() } });
  if (response.status === 401 && !localStorage.getItem(KEY_STORAGE)) {
    throw new Error("no API key entered: paste one above (`lure up` prints one at its first start)");
  }
  if (response.status === 401 || response.status === 403) {
    throw new Error(`the API refused the key (${response.status}): enter an API key above`);
  }
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

document.getElementById("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("key-input");
  if (input.value.trim()) localStorage.setItem(KEY_STORAGE, input.value.trim());
  input.value = "";
  refresh();
});

const pct = (v) => (v === null || v === undefined ? "–" : (100 * v).toFixed(2) + " %");
const num = (v, d = 2) => (v === null || v === undefined ? "–" : Number(v).toFixed(d));
const when = (iso) => (iso ? new Date(iso + (iso.endsWith("Z") || iso.includes("+") ? "" : "Z")).toLocaleString() : "–");

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function lineChart(id, label, color, yLabel) {
  return new Chart(document.getElementById(id), {
    type: "line",
    data: { labels: [], datasets: [{ label, data: [], borderColor: color, backgroundColor: color, tension: 0.15 }] },
    options: {
      animation: false, maintainAspectRatio: false,
      plugins: { title: { display: true, text: label } },
      scales: { x: { title: { display: true, text: "version" } }, y: { title: { display: true, text: yLabel } } },
    },
  });
}

function reliabilityChart(id) {
  return new Chart(document.getElementById(id), {
    type: "bar",
    data: { labels: [], datasets: [
      { label: "accuracy", data: [], backgroundColor: "#4e79a7" },
      { label: "confidence", data: [], backgroundColor: "#f28e2b", type: "line", pointRadius: 3 },
    ] },
    options: {
      animation: false, maintainAspectRatio: false,
      plugins: { title: { display: true, text: "Reliability diagram (live version)" } },
      scales: { x: { title: { display: true, text: "confidence bin" } }, y: { min: 0, max: 1 } },
    },
  });
}

function ensureCharts() {
  if (state.charts.accuracy) return;
  state.charts.accuracy = lineChart("chart-accuracy", "Test accuracy", "#4e79a7", "accuracy");
  state.charts.cer = lineChart("chart-cer", "Cumulative errors (CER)", "#e15759", "test errors");
  state.charts.gap = lineChart("chart-gap", "Generalization gap", "#76b7b2", "train − val accuracy");
  state.charts.ece = lineChart("chart-ece", "Expected calibration error", "#f28e2b", "ECE");
  state.charts.steps = lineChart("chart-steps", "Compute: optimiser steps per update", "#59a14f", "steps");
  state.charts.reliability = reliabilityChart("chart-reliability");
  state.charts.strategies = lineChart("chart-strategies", "Gate accuracy per strategy", "#4e79a7", "accuracy");
  state.charts.strategies.options.scales.x.title.text = "mega-batch";
  state.charts.drift = lineChart("chart-drift", "Drift: confidence KS distance per check", "#b07aa1", "KS D");
  state.charts.drift.options.scales.x.title.text = "check (version)";
}

// Drift checks on logged traffic (issue 28 §4): KS distance per check, drifted checks in red.
function driftChart(drift) {
  const chart = state.charts.drift;
  chart.data.labels = drift.checks.map((c, i) => `${i + 1} (v${c.version})`);
  const dataset = chart.data.datasets[0];
  dataset.data = drift.checks.map((c) => c.confidence_statistic);
  dataset.pointBackgroundColor = drift.checks.map((c) => (c.drifted ? "#e15759" : "#b07aa1"));
  dataset.pointRadius = drift.checks.map((c) => (c.drifted ? 6 : 3));
  chart.update("none");
  const last = drift.checks[drift.checks.length - 1];
  document.getElementById("live-drift").textContent = !drift.policy ? "drift: not checked (no prediction log)"
    : !last ? "drift: no check yet"
    : `drift: last check ${last.drifted ? "DRIFTED" : "ok"} (p = ${last.p_value.toPrecision(2)}), ${drift.drifted_checks} alarm(s)`;
}

const STRATEGY_COLORS = ["#4e79a7", "#e15759", "#59a14f", "#f28e2b", "#b07aa1", "#76b7b2"];

function strategyChart(summary) {
  const chart = state.charts.strategies;
  const megabatches = [...new Set(Object.values(summary.curves).flat().map((p) => p.megabatch))].sort((a, b) => a - b);
  chart.data.labels = megabatches.map(String);
  chart.data.datasets = Object.entries(summary.curves).map(([strategy, points], i) => {
    const byMegabatch = new Map(points.map((p) => [p.megabatch, p.gate_accuracy]));
    const color = STRATEGY_COLORS[i % STRATEGY_COLORS.length];
    return { label: strategy, data: megabatches.map((m) => byMegabatch.get(m) ?? null),
      borderColor: color, backgroundColor: color, tension: 0.15, spanGaps: true };
  });
  chart.update("none");
}

function gateText(v) {
  if (!v.gate) return "–";
  const delta = v.gate.numbers && v.gate.numbers.accuracy_delta;
  return v.gate.verdict + (delta == null ? "" : ` (${delta >= 0 ? "+" : ""}${(delta * 100).toFixed(1)})`);
}

function lineageText(lineages) {
  if (!lineages || !lineages.on) return "";
  const heads = Object.entries(lineages.heads).map(([s, n]) => `${s} v${n}`).join(", ");
  const evidence = Object.entries(lineages.evidence_against_live).map(([s, e]) =>
    `${s} ${e.only_this}:${e.only_other} rows over ${e.megabatches} mega-batches ` +
    `(p ahead ${num(e.p_ahead, 3)}, p behind ${num(e.p_behind, 3)})`).join("; ");
  return `. Lineages: live ${lineages.live_lineage || "none yet"}; heads ${heads || "–"}` +
    (evidence ? `; against the live one: ${evidence}` : "");
}

function candidatesTable(versions, summary) {
  const wins = Object.entries(summary.wins).map(([s, n]) => `${s} ${n}`).join(", ");
  const seconds = Object.entries(summary.seconds_per_candidate)
    .filter(([, v]) => v != null).map(([s, v]) => `${s} ${num(v, 1)} s`).join(", ");
  const retired = summary.retired.length ? `; retired: ${summary.retired.join(", ")}` : "";
  document.getElementById("strategy-summary").textContent =
    `candidates: ${summary.candidates.join(", ")}; wins: ${wins || "none yet"}; ` +
    `seconds per candidate: ${seconds || "–"}${retired}${lineageText(summary.lineages)}`;
  const groups = new Map();
  for (const v of versions) {
    if (v.megabatch == null || !v.gate) continue;
    if (!groups.has(v.megabatch)) groups.set(v.megabatch, []);
    groups.get(v.megabatch).push(v);
  }
  const body = document.querySelector("#candidates tbody");
  body.replaceChildren();
  for (const [megabatch, siblings] of [...groups.entries()].reverse()) {
    const row = body.insertRow();
    row.dataset.megabatch = megabatch;
    cell(row, megabatch);
    const list = row.insertCell();
    for (const v of siblings) {
      const span = document.createElement("span");
      span.className = "candidate" + (v.gate.winner ? " winner" : "");
      const accuracy = v.gate.numbers && v.gate.numbers.candidate ? pct(v.gate.numbers.candidate.accuracy) : "–";
      span.textContent = `v${v.number} ${v.strategy}: ${accuracy}, ${v.gate.verdict}, ${num(v.candidate_seconds, 1)} s`;
      list.appendChild(span);
    }
    const winner = siblings.find((v) => v.gate.winner) || siblings[0];
    const wentLive = winner.release === "live" || winner.gate.verdict === "forced";
    cell(row, wentLive ? `v${winner.number} (${winner.strategy})` : "none", wentLive ? "" : "verdict-held");
    cell(row, winner.gate.reasons.length ? winner.gate.reasons.join("; ") :
      (winner.release_note || `best on ${winner.gate.rank_by}, passed the gate`));
  }
}

function setSeries(chart, labels, values) {
  chart.data.labels = labels;
  chart.data.datasets[0].data = values;
  chart.update("none");
}

function jobSummary(jobs) {
  const running = jobs.find((j) => j.state === "running");
  const queued = jobs.filter((j) => j.state === "queued").length;
  return { running, queued };
}

function progressText(job) {
  if (!job) return "idle";
  const p = job.progress || {};
  if (p.phase === "relearn") return `mega-batch ${job.megabatch}: epoch ${p.epoch}/${p.epochs}, loss ${num(p.loss, 3)}`;
  return `mega-batch ${job.megabatch}: ${p.phase || job.state}`;
}

async function refreshOverview() {
  const models = await getJSON("/v1/models");
  const rows = await Promise.all(models.map(async (m) => {
    const [versions, jobs] = await Promise.all([
      getJSON(`/v1/models/${m.name}/versions`), getJSON(`/v1/models/${m.name}/jobs?limit=50`)]);
    return { model: m, versions, jobs };
  }));
  state.models = rows;
  const body = document.querySelector("#models tbody");
  body.replaceChildren();
  for (const { model, versions, jobs } of rows) {
    const row = body.insertRow();
    row.className = "selectable" + (model.name === state.selected ? " selected" : "");
    row.dataset.model = model.name;
    row.onclick = () => { state.selected = model.name; location.hash = "model=" + model.name; refresh(); };
    const { running, queued } = jobSummary(jobs);
    cell(row, model.name);
    cell(row, model.live_version ?? "–");
    cell(row, versions.length);
    cell(row, versions.length ? when(versions[versions.length - 1].created_at) : "–");
    cell(row, `${queued} queued, ${running ? 1 : 0} running`);
    cell(row, progressText(running));
    cell(row, diskText(model.disk_bytes));
  }
  if (!state.selected && rows.length) state.selected = rows[0].model.name;
}

function diskText(bytes) {
  if (bytes == null) return "–";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let value = bytes, unit = 0;
  while (value >= 1000 && unit < units.length - 1) { value /= 1000; unit += 1; }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

async function refreshModel() {
  const entry = state.models.find((r) => r.model.name === state.selected);
  const detail = document.getElementById("model-detail");
  if (!entry) { detail.hidden = true; return; }
  detail.hidden = false;
  ensureCharts();
  const { model, versions, jobs } = entry;
  document.getElementById("model-name").textContent = model.name;

  const open = model.open_megabatch;
  const size = model.config.megabatch_size;
  document.getElementById("fill-text").textContent =
    open ? `#${open.index}: ${open.n_samples} / ${size}` : `empty (0 / ${size})`;
  const fill = document.getElementById("fill-bar");
  fill.max = size; fill.value = open ? Math.min(open.n_samples, size) : 0;

  const { running, queued } = jobSummary(jobs);
  document.getElementById("job-text").textContent = running ? `running` : (queued ? `${queued} queued` : "idle");
  document.getElementById("job-detail").textContent = progressText(running);
  const bar = document.getElementById("job-bar");
  const p = running ? running.progress || {} : {};
  bar.max = 1;
  bar.value = p.phase === "relearn" ? ((p.epoch - 1) + p.step / p.steps) / p.epochs : 0;

  const series = await getJSON(`/v1/models/${model.name}/metrics`);
  const labels = series.versions.map(String);
  setSeries(state.charts.accuracy, labels, series.test_accuracy);
  setSeries(state.charts.cer, labels, series.cer);
  setSeries(state.charts.gap, labels, series.generalization_gap);
  setSeries(state.charts.ece, labels, series.ece);
  setSeries(state.charts.steps, labels, series.optimizer_steps);

  const live = model.live_version;
  document.getElementById("live-text").textContent = live ? `v${live}` : "none yet";
  if (live) {
    const version = await getJSON(`/v1/models/${model.name}/versions/${live}`);
    const bins = (version.metrics.reliability || []).filter((b) => b.count > 0);
    const chart = state.charts.reliability;
    chart.data.labels = bins.map((b) => `${b.low.toFixed(1)}–${b.high.toFixed(1)}`);
    chart.data.datasets[0].data = bins.map((b) => b.accuracy);
    chart.data.datasets[1].data = bins.map((b) => b.confidence);
    chart.update("none");
    document.getElementById("live-detail").textContent =
      `test accuracy ${pct(version.metrics.test_accuracy)}, sha256 ${version.sha256.slice(0, 12)}`;
  }

  document.getElementById("live-feedback").textContent =
    feedbackText(await getJSON(`/v1/models/${model.name}/live-accuracy`), live);

  driftChart(await getJSON(`/v1/models/${model.name}/drift`));

  const summary = await getJSON(`/v1/models/${model.name}/strategies`);
  strategyChart(summary);
  candidatesTable(versions, summary);
  quarantineTable(model.name, await getJSON(`/v1/models/${model.name}/megabatches`));

  const body = document.querySelector("#versions tbody");
  body.replaceChildren();
  for (const v of [...versions].reverse()) {
    const row = body.insertRow();
    row.dataset.version = v.number;
    row.className = v.live ? "live" : (v.release === "held" ? "held" : "");
    const m = v.metrics;
    cell(row, "v" + v.number);
    cell(row, v.megabatch ?? "import");
    cell(row, v.parent ?? "–");
    cell(row, v.strategy);
    cell(row, pct(m.test_accuracy), "acc");
    cell(row, m.cer ?? "–", "cer");
    cell(row, pct(m.generalization_gap), "gap");
    cell(row, num(m.ece, 4), "ece");
    cell(row, num(m.train_seconds, 1));
    cell(row, m.optimizer_steps == null ? "–" : `${m.epochs_trained} / ${m.optimizer_steps}`, "steps");
    const gate = cell(row, gateText(v), v.gate ? "verdict-" + v.gate.verdict : "");
    if (v.gate && v.gate.reasons.length) gate.title = v.gate.reasons.join("\n");
    cell(row, v.sha256.slice(0, 12));
    const action = row.insertCell();
    if (!v.live) {
      const button = document.createElement("button");
      button.textContent = "promote";
      button.onclick = () => promote(model.name, v.number);
      action.appendChild(button);
    }
  }
}

// Live accuracy: feedback labels on the live version's logged answers (issue 28).
function feedbackText(accuracy, live) {
  const row = accuracy.versions.find((v) => v.version === live);
  if (!row) return "live accuracy: no feedback labels yet";
  return `live accuracy ${pct(row.accuracy)} on ${row.labelled} feedback labels`;
}

// Mega-batches the data gate quarantined, each with its reason and an admin's two choices.
function quarantineTable(name, megabatches) {
  const held = megabatches.filter((m) => m.state === "quarantined");
  document.getElementById("quarantine").hidden = held.length === 0;
  const body = document.querySelector("#quarantined tbody");
  body.replaceChildren();
  for (const m of held) {
    const row = body.insertRow();
    row.dataset.megabatch = m.index;
    cell(row, "#" + m.index);
    cell(row, m.n_samples);
    cell(row, ((m.data_gate || {}).reasons || []).join("; "), "why");
    const actions = row.insertCell();
    for (const action of ["release", "discard"]) {
      const button = document.createElement("button");
      button.textContent = action;
      button.onclick = () => decide(name, m.index, action);
      actions.appendChild(button);
    }
  }
}

async function decide(name, index, action) {
  const effect = action === "release" ? "train it as it is" : "keep it out of training for good";
  if (!confirm(`${action} mega-batch ${index} of ${name}: ${effect}?`)) return;
  const response = await fetch(`/v1/models/${name}/megabatches/${index}/${action}`,
    { method: "POST", headers: authHeaders() });
  if (!response.ok) alert(`${action} failed: ${(await response.json()).detail}`);
  refresh();
}

async function promote(name, number) {
  const shadow = (await getJSON(`/v1/models/${name}/shadow`)).versions.find((v) => v.version === number);
  if (!confirm(`Serve version ${number} of ${name}? The next update will start from it ` +
    `(a version the gate held is recorded as forced).` + shadowText(shadow))) return;
  const response = await fetch(`/v1/models/${name}/versions/${number}/promote`,
    { method: "POST", headers: authHeaders() });
  if (!response.ok) alert(`promote failed: ${(await response.json()).detail}`);
  refresh();
}

// A shadow version's record, for the promote dialog (issue 28 §5).
function shadowText(record) {
  if (!record) return "";
  let text = `\n\nAs a shadow it answered ${record.answered} logged requests and agreed with ` +
    `the served answer on ${pct(record.agreement)}.`;
  if (record.labelled) text += ` On the ${record.labelled} labelled since: ${pct(record.accuracy)} ` +
    `right, against ${pct(record.served_accuracy)} for the versions that answered.`;
  return text;
}

// Which models the key reaches: a team's key sees only its own.
async function refreshKey() {
  const key = await getJSON("/v1/keys/me");
  const reach = key.models === null ? "every model" : "models " + key.models.join(", ");
  document.getElementById("key-reach").textContent =
    `key ${key.name} (${key.scopes.join(", ")}) reaches ${reach}`;
}

async function refresh() {
  try {
    await refreshKey();
    await refreshOverview();
    await refreshModel();
    state.lastRefresh = new Date();
    document.getElementById("status").textContent = "updated " + state.lastRefresh.toLocaleTimeString();
  } catch (error) {
    document.getElementById("status").textContent = "error: " + error.message;
  }
}

const fromHash = new URLSearchParams(location.hash.slice(1)).get("model");
if (fromHash) state.selected = fromHash;
refresh();
setInterval(refresh, POLL_MS);
