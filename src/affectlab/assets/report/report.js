/* affectlab's result pages: a video's page, the images' page and the index, drawn from the JSON inside
   each page (written by affectlab.analyze.report). Charts are Plotly's (the offline bundle beside this
   file); nothing is fetched from the network. */
"use strict";
(function () {
  performance.mark("affectlab-start"); // after plotly.js has loaded: what follows is this page's own work
  const DATA = JSON.parse(document.getElementById("affectlab-data").textContent);
  const app = document.getElementById("app");
  const PLOT_CONFIG = {displaylogo: false, responsive: true,
    modeBarButtonsToRemove: ["select2d", "lasso2d", "toImage", "autoScale2d"]};
  const FONT = {family: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", size: 12, color: "#333"};

  // --- small helpers ---------------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "style") node.style.cssText = value;
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined && child !== false)
        node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  const signed = (v, digits = 2) => (v === null || v === undefined) ? "–" : (v >= 0 ? "+" : "−") + Math.abs(v).toFixed(digits);
  const percent = (v) => (v === null || v === undefined) ? "–" : Math.round(v * 100) + "%";
  const colourOf = (name) => (DATA.colours && DATA.colours[name]) || "#bbbbbb";
  const inkOn = (hex) => {
    const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
    return r * 0.299 + g * 0.587 + b * 0.114 > 150 ? "#111" : "#fff";
  };
  const chip = (name, extra) => name
    ? el("span", {class: "chip", style: `background:${colourOf(name)};color:${inkOn(colourOf(name))}`},
      name + (extra ? " " + extra : ""))
    : el("span", {class: "chip none"}, "no expression");

  function header(title, subtitle, back) {
    return el("header", {},
      back ? el("a", {class: "back", href: "index.html"}, "← all results") : null,
      el("h1", {}, title),
      subtitle ? el("p", {class: "subtitle"}, subtitle) : null);
  }
  function notices(lines) {
    return (lines || []).map((line) => el("p", {class: "notice", role: "status"}, line));
  }
  function summaryLine(s, images) {
    const parts = [];
    if (images) parts.push(`${s.faces} face${s.faces === 1 ? "" : "s"} in ${s.with_face}/${s.frames} images`);
    else parts.push(`faces in ${s.with_face}/${s.frames} frames`);
    if (s.people) parts.push(`${s.people} ${s.people === 1 ? "person" : "people"} tracked`);
    if (s.dominant) parts.push(`mostly ${s.dominant} (${percent(s.dominant_share)})`);
    if (s.valence !== undefined) parts.push(`mean valence ${signed(s.valence)}, arousal ${signed(s.arousal)}`);
    if (s.top_aus && s.top_aus.length) parts.push("most active " + s.top_aus.map((a) => `${a.au} ${percent(a.rate)}`).join(", "));
    return parts.join(" · ");
  }
  function topAus(list) {
    return (list || []).map((a) => el("span", {class: "au", title: a.name}, `${a.au} ${percent(a.rate)}`));
  }
  function ready() { // the page is drawn: marked for the benchmark and the browser tests
    performance.mark("affectlab-ready");
    document.body.dataset.ready = "1";
  }
  // Plotly's axis maps between data and pixels (px from the graph's left edge).
  function axisOf(gd) { return gd._fullLayout && gd._fullLayout.xaxis; }
  function xToPixel(gd, x) { const ax = axisOf(gd); return ax ? ax._offset + ax.l2p(x) : null; }
  function pixelToX(gd, clientX) {
    const ax = axisOf(gd);
    return ax ? ax.p2l(clientX - gd.getBoundingClientRect().left - ax._offset) : null;
  }

  // --- a video's page --------------------------------------------------------------------------------
  function renderVideo(d) {
    const faces = d.faces;
    let chosen = Math.max(0, faces.findIndex((f) => f.id === d.main));
    let stillTime = 0; // the time shown when there is no video to play
    const subtitle = summaryLine(d.summary);
    app.append(header(d.title, subtitle, true), ...notices(d.notices));

    const video = d.video ? el("video", {id: "video", src: d.video.src, controls: true, preload: "metadata",
      playsinline: true}) : null;
    const canvas = el("canvas", {id: "boxes", "aria-hidden": "true"});
    const stage = el("div", {class: "stage"}, video || el("div", {class: "novideo"}, "no video to play"), canvas);
    const picker = el("select", {id: "face", "aria-label": "face"},
      faces.map((f, k) => el("option", {value: String(k)}, `face ${f.id} — in ${percent(f.share)} of frames`)));
    picker.value = String(chosen);
    const showBoxes = el("input", {type: "checkbox", id: "show-boxes"});
    showBoxes.checked = !(d.video && d.video.annotated);
    const now = el("div", {id: "now", class: "now", "aria-live": "off"});
    const faceSummary = el("div", {id: "face-summary", class: "face-summary"});
    const controls = el("div", {class: "controls"},
      el("label", {}, "Face ", picker),
      el("label", {title: "draw the table's face boxes over the video"}, showBoxes, " boxes"),
      d.video ? el("span", {class: "muted"}, d.video.annotated ? "annotated video (--video-out)" : "original video") : null);
    if (faces.length < 2) picker.disabled = true;
    const circ = el("div", {id: "circumplex", class: "chart"});
    const dot = el("div", {class: "dot", hidden: true});
    const hasVA = faces.length > 0 && Boolean(faces[0].chart.trail);
    const circWrap = hasVA ? el("div", {class: "chart-wrap square"}, circ, dot)
      : el("p", {class: "muted"}, "No valence and arousal to place.");
    app.append(el("section", {class: "top"},
      el("div", {class: "player"}, stage, controls, now),
      el("div", {class: "side"}, el("h2", {}, "Now on the circumplex"), circWrap, faceSummary)));

    const timelines = [];
    function timeline(id, title) {
      const gd = el("div", {id, class: "chart"});
      const head = el("div", {class: "playhead", hidden: true});
      app.append(el("section", {class: "timeline"}, el("h2", {}, title), el("div", {class: "chart-wrap"}, gd, head)));
      timelines.push({gd, head});
      return gd;
    }
    const first = faces[0] && faces[0].chart;
    const vaChart = first && first.valence ? timeline("va", "Valence and arousal") : null;
    const exprChart = first && first.expr ? timeline("expressions", "Expressions") : null;
    const auChart = first && first.heat ? timeline("aus", "Action units (probability)") : null;
    if (!faces.length) app.append(el("p", {class: "notice"}, "No face was analysed in this video: nothing to chart."));
    app.append(el("p", {class: "hint"}, "Click a chart to move the video there; drag to zoom in time, double-click to zoom out."));

    const span = d.times.length ? [d.times[0], Math.max(d.times[d.times.length - 1], d.times[0] + 0.1)] : [0, 1];
    const base = (height) => ({height, font: FONT, margin: {l: 180, r: 80, t: 8, b: 36}, paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "#fff", hovermode: "x", hoverdistance: -1, dragmode: "zoom", showlegend: true,
      legend: {orientation: "h", x: 0, y: 1.02, yanchor: "bottom"},
      xaxis: {title: {text: "time (s)"}, showgrid: false, zeroline: false, range: span},
      yaxis: {fixedrange: true, gridcolor: "#eee"}});

    function vaTraces(c) {
      return [["valence", "#0072B2"], ["arousal", "#D55E00"]].map(([name, colour]) => ({
        type: "scatter", mode: "lines", name, x: c.t, y: c[name], line: {color: colour, width: 1.5},
        connectgaps: false, hovertemplate: "%{y:+.2f}<extra>" + name + "</extra>"}));
    }
    function exprTraces(c) {
      return d.expressions.map((name) => ({
        type: "scatter", mode: "lines", name, x: c.t, y: c.expr[name], stackgroup: "p", groupnorm: "",
        line: {width: 0, color: colourOf(name)}, fillcolor: colourOf(name), stackgaps: "infer zero",
        hovertemplate: "%{y:.0%}<extra>" + name + "</extra>"}));
    }
    function auTraces(c) {
      return [{type: "heatmap", x: c.heat_t, y: d.aus, z: c.heat, zmin: 0, zmax: 1, colorscale: "Viridis",
        colorbar: {thickness: 10, len: 1, x: 1.01, xanchor: "left", tickformat: ".0%"}, hoverongaps: false,
        hovertemplate: "%{y}<br>%{x:.1f} s: %{z:.0%}<extra></extra>"}];
    }
    function circTraces(c) {
      const colours = (c.trail.top || []).map((k) => k === null ? "#bbb" : colourOf(d.expressions[k]));
      return [{type: "scatter", mode: "markers", x: c.trail.valence, y: c.trail.arousal,
        marker: {size: 5, color: colours, opacity: 0.45}, hovertemplate: "valence %{x:+.2f}<br>arousal %{y:+.2f}<extra></extra>",
        showlegend: false}];
    }
    const circLayout = {height: 340, font: FONT, margin: {l: 44, r: 12, t: 8, b: 40}, paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "#fff", hovermode: "closest", dragmode: false,
      xaxis: {range: [-1.1, 1.1], zeroline: true, zerolinecolor: "#ccc", gridcolor: "#f2f2f2", fixedrange: true,
        title: {text: "valence"}, constrain: "domain"},
      yaxis: {range: [-1.1, 1.1], zeroline: true, zerolinecolor: "#ccc", gridcolor: "#f2f2f2", fixedrange: true,
        title: {text: "arousal"}, scaleanchor: "x", scaleratio: 1, constrain: "domain"},
      shapes: [{type: "circle", x0: -1, y0: -1, x1: 1, y1: 1, line: {color: "#999", width: 1}}],
      annotations: [[-1.05, 1.05, "tense, angry", "left"], [1.05, 1.05, "excited, happy", "right"],
        [-1.05, -1.05, "sad, tired", "left"], [1.05, -1.05, "calm, content", "right"]].map(([x, y, text, xanchor]) => ({
        x, y, text, xanchor, showarrow: false, font: {size: 10, color: "#888"}, yanchor: y > 0 ? "top" : "bottom"}))};

    let syncing = false;
    function syncRange(source, event) {
      if (syncing) return;
      const update = {};
      if (event["xaxis.autorange"]) update["xaxis.autorange"] = true;
      else if (event["xaxis.range[0]"] !== undefined) update["xaxis.range"] = [event["xaxis.range[0]"], event["xaxis.range[1]"]];
      else if (event["xaxis.range"]) update["xaxis.range"] = event["xaxis.range"];
      else return;
      syncing = true;
      Promise.all(timelines.filter((t) => t.gd !== source).map((t) => Plotly.relayout(t.gd, update)))
        .finally(() => { syncing = false; update_(); });
    }

    function draw() {
      const c = faces[chosen] ? faces[chosen].chart : null;
      if (!c) return Promise.resolve();
      const jobs = [];
      if (vaChart) jobs.push(Plotly.react(vaChart, vaTraces(c), Object.assign(base(220), {
        yaxis: {range: [-1.05, 1.05], fixedrange: true, gridcolor: "#eee", zeroline: true, zerolinecolor: "#bbb", tickformat: "+.1f"}}), PLOT_CONFIG));
      if (exprChart) jobs.push(Plotly.react(exprChart, exprTraces(c), Object.assign(base(240), {
        yaxis: {range: [0, 1], fixedrange: true, tickformat: ".0%", gridcolor: "#eee"}}), PLOT_CONFIG));
      if (auChart) jobs.push(Plotly.react(auChart, auTraces(c), Object.assign(base(40 + 20 * d.aus.length), {
        showlegend: false, hovermode: "closest", yaxis: {autorange: "reversed", fixedrange: true}}), PLOT_CONFIG));
      if (c.trail) jobs.push(Plotly.react(circ, circTraces(c), circLayout, Object.assign({}, PLOT_CONFIG, {displayModeBar: false})));
      faceSummary.replaceChildren(el("h3", {}, `face ${faces[chosen].id}`),
        el("p", {}, summaryLine(faces[chosen].summary)));
      return Promise.all(jobs);
    }

    const times = d.times;
    function frameAt(t) { // the last analysed frame at or before t
      let lo = 0, hi = times.length - 1;
      if (hi < 0) return -1;
      if (t < times[0]) return 0;
      while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (times[mid] <= t + 1e-4) lo = mid; else hi = mid - 1; }
      return lo;
    }
    const currentTime = () => video && !video.error ? video.currentTime : stillTime;
    function seek(t) {
      if (t === null || !isFinite(t)) return;
      t = Math.max(0, Math.min(t, times.length ? times[times.length - 1] + 1 : t));
      if (video && !video.error) video.currentTime = t; else stillTime = t;
      update_();
    }

    function drawBoxes(k) {
      const ctx = canvas.getContext("2d");
      const w = stage.clientWidth, h = stage.clientHeight, ratio = window.devicePixelRatio || 1;
      if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
        canvas.width = Math.round(w * ratio); canvas.height = Math.round(h * ratio);
      }
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      ctx.clearRect(0, 0, w, h);
      if (!video || !video.videoWidth || k < 0 || !showBoxes.checked) return;
      const scale = Math.min(w / video.videoWidth, h / video.videoHeight);
      const ox = (w - video.videoWidth * scale) / 2, oy = (h - video.videoHeight * scale) / 2;
      faces.forEach((f, j) => {
        const [xs, ys, ws, hs] = f.per_frame.box;
        if (xs[k] === null) return;
        const e = f.per_frame.expression[k];
        const colour = e === null || e === undefined ? "#ddd" : colourOf(d.expressions[e]);
        const x = ox + xs[k] * scale, y = oy + ys[k] * scale, bw = ws[k] * scale, bh = hs[k] * scale;
        ctx.lineWidth = j === chosen ? 3 : 1.5;
        ctx.setLineDash(j === chosen ? [] : [5, 4]);
        ctx.strokeStyle = colour;
        ctx.strokeRect(x, y, bw, bh);
        const label = `#${f.id}` + (e !== null && e !== undefined ? ` ${d.expressions[e]}` : "");
        ctx.font = "bold 12px system-ui, sans-serif";
        const tw = ctx.measureText(label).width + 8;
        ctx.fillStyle = colour;
        ctx.fillRect(x - ctx.lineWidth / 2, Math.max(0, y - 18), tw, 18);
        ctx.fillStyle = inkOn(colour);
        ctx.fillText(label, x + 4 - ctx.lineWidth / 2, Math.max(0, y - 18) + 13);
      });
    }

    function update_() {
      const t = currentTime(), k = frameAt(t);
      for (const {gd, head} of timelines) {
        const px = axisOf(gd) ? xToPixel(gd, t) : null;
        const size = gd._fullLayout && gd._fullLayout._size;
        const inside = px !== null && size && px >= size.l - 1 && px <= size.l + size.w + 1;
        head.hidden = !inside;
        if (inside) { head.style.left = px + "px"; head.style.top = size.t + "px"; head.style.height = size.h + "px"; }
      }
      const f = faces[chosen];
      const frameText = k >= 0 ? `${t.toFixed(2)} s · frame ${d.frames[k]}` : `${t.toFixed(2)} s`;
      if (!f || k < 0 || f.per_frame.box[0][k] === null) {
        dot.hidden = true;
        now.replaceChildren(el("span", {class: "time"}, frameText),
          el("span", {class: "muted"}, f ? `face ${f.id} is not in this frame` : "no face"));
      } else {
        const e = f.per_frame.expression[k], v = f.per_frame.valence ? f.per_frame.valence[k] : null,
          a = f.per_frame.arousal ? f.per_frame.arousal[k] : null;
        now.replaceChildren(el("span", {class: "time"}, frameText),
          el("span", {}, `face ${f.id}`),
          chip(e === null || e === undefined ? null : d.expressions[e], f.per_frame.p ? percent(f.per_frame.p[k]) : ""),
          el("span", {class: "va"}, `valence ${signed(v)}`), el("span", {class: "va"}, `arousal ${signed(a)}`));
        const layout = circ._fullLayout;
        if (layout && layout.xaxis && v !== null && a !== null) {
          dot.hidden = false;
          dot.style.left = (layout.xaxis._offset + layout.xaxis.l2p(v)) + "px";
          dot.style.top = (layout.yaxis._offset + layout.yaxis.l2p(a)) + "px";
          dot.style.background = e === null || e === undefined ? "#999" : colourOf(d.expressions[e]);
        } else dot.hidden = true;
      }
      drawBoxes(k);
    }

    draw().then(() => {
      for (const {gd} of timelines) {
        gd.on("plotly_click", (ev) => seek(ev.event ? pixelToX(gd, ev.event.clientX) : Number(ev.points[0].x)));
        gd.on("plotly_relayout", (ev) => syncRange(gd, ev));
        gd.on("plotly_afterplot", () => update_());
      }
      update_();
      ready();
    });
    const choose = (k) => { chosen = k; picker.value = String(k); return draw().then(update_); };
    picker.addEventListener("change", () => choose(Number(picker.value)));
    showBoxes.addEventListener("change", update_);
    window.addEventListener("resize", update_);
    if (video) {
      const onFrame = () => { update_(); video.requestVideoFrameCallback(onFrame); };
      if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(onFrame);
      for (const name of ["timeupdate", "seeked", "loadedmetadata"]) video.addEventListener(name, update_);
      video.addEventListener("error", () => {
        stage.prepend(el("p", {class: "notice overlay"}, `The video ${d.video.path} could not be played (moved or deleted?): the charts still work.`));
        update_();
      });
    }
    window.affectlab = {seek, frameAt, chooseFace: choose}; // for scripts and the browser tests
  }

  // --- the images' page --------------------------------------------------------------------------------
  function renderImages(d) {
    app.append(header(`Images: ${d.title}`, summaryLine(d.summary, true), true), ...notices(d.notices));
    const cards = d.cards.map((c, k) => Object.assign({order: k}, c));
    const circ = el("div", {id: "circumplex", class: "chart"});
    const sortBy = el("select", {id: "sort", "aria-label": "sort by"},
      [["order", "file order"], ["expression", "expression"], ["valence", "valence"], ["arousal", "arousal"],
        ["confidence", "detector score"]].map(([v, t]) => el("option", {value: v}, t)));
    const direction = el("select", {id: "direction", "aria-label": "order"},
      el("option", {value: "desc"}, "high → low"), el("option", {value: "asc"}, "low → high"));
    const grid = el("div", {id: "cards", class: "cards"});
    app.append(el("section", {class: "top images"},
      el("div", {class: "chart-wrap square"}, circ),
      el("div", {class: "toolbar"}, el("h2", {}, `${cards.length} face${cards.length === 1 ? "" : "s"}`),
        el("p", {class: "counts"}, d.expressions.map((name) => [name, cards.filter((c) => c.expression === name).length])
          .filter(([, n]) => n).map(([name, n]) => chip(name, `× ${n}`))),
        el("label", {}, "Sort by ", sortBy), el("label", {}, " ", direction),
        el("p", {class: "hint"}, "Click a face on the circumplex to find its card; hover for its name."),
        d.without_face.length ? el("p", {class: "muted"}, `No face found in: ${d.without_face.map((p) => p.split(/[\\/]/).pop()).join(", ")}`) : null)));
    app.append(grid);

    function card(c) {
      const probs = d.expressions.map((name) => el("div", {class: "prob"},
        el("span", {class: "label"}, name),
        el("span", {class: "bar"}, el("span", {style: `width:${((c.probs[name] || 0) * 100).toFixed(1)}%;background:${colourOf(name)}`})),
        el("span", {class: "value"}, percent(c.probs[name]))));
      const vaBar = (name, v) => el("div", {class: "prob va"}, el("span", {class: "label"}, name),
        el("span", {class: "bar centred"}, v === null ? null : el("span", {
          style: `left:${v >= 0 ? 50 : 50 + v * 50}%;width:${Math.abs(v) * 50}%;background:${v >= 0 ? "#0072B2" : "#D55E00"}`})),
        el("span", {class: "value"}, signed(v)));
      return el("article", {class: "card", id: `face-${c.order}`, "data-expression": c.expression || ""},
        c.crop ? el("img", {src: c.crop, alt: `${c.file} face ${c.face_id}`, loading: "lazy"}) : el("div", {class: "nocrop"}, "no crop"),
        el("div", {class: "body"},
          el("h3", {title: c.input}, `${c.file} #${c.face_id}`),
          chip(c.expression, percent(c.p)),
          el("div", {class: "probs"}, probs, vaBar("valence", c.valence), vaBar("arousal", c.arousal)),
          el("p", {class: "aus"}, c.active.length ? c.active.map((a) => el("span", {class: "au", title: a.name}, `${a.au} ${percent(a.p)}`)) : el("span", {class: "muted"}, "no active AU"))));
    }
    const expressionRank = (c) => c.expression === null ? d.expressions.length : d.expressions.indexOf(c.expression);
    function sortCards() {
      const key = sortBy.value, sign = direction.value === "asc" ? 1 : -1;
      const value = (c) => c[key] === null || c[key] === undefined ? null : c[key];
      const sorted = cards.slice().sort((a, b) => {
        if (key === "order") return sign * (a.order - b.order);
        if (key === "expression") return sign * (expressionRank(a) - expressionRank(b)) || (b.p || 0) - (a.p || 0) || a.order - b.order;
        const va = value(a), vb = value(b);
        if (va === null || vb === null) return (va === null) - (vb === null);
        return sign * (va - vb) || a.order - b.order;
      });
      grid.replaceChildren(...sorted.map(card));
    }
    sortBy.addEventListener("change", () => { direction.value = sortBy.value === "order" || sortBy.value === "expression" ? "asc" : "desc"; sortCards(); });
    direction.addEventListener("change", sortCards);
    direction.value = "asc";
    sortCards();

    const placed = cards.filter((c) => c.valence !== null && c.arousal !== null);
    const traces = d.expressions.map((name) => {
      const mine = placed.filter((c) => c.expression === name);
      return {type: "scatter", mode: "markers", name, x: mine.map((c) => c.valence), y: mine.map((c) => c.arousal),
        customdata: mine.map((c) => c.order), marker: {size: 11, color: colourOf(name), line: {color: "#333", width: 0.5}},
        hovertemplate: mine.map((c) => `${c.file} #${c.face_id}<br>valence %{x:+.2f}, arousal %{y:+.2f}<extra>${name}</extra>`)};
    }).filter((t) => t.x.length);
    Plotly.newPlot(circ, traces, {height: 380, font: FONT, margin: {l: 44, r: 12, t: 8, b: 40}, paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "#fff", hovermode: "closest", dragmode: false, legend: {x: 1.02, y: 0.5},
      xaxis: {range: [-1.1, 1.1], zerolinecolor: "#ccc", gridcolor: "#f2f2f2", fixedrange: true, title: {text: "valence"}, constrain: "domain"},
      yaxis: {range: [-1.1, 1.1], zerolinecolor: "#ccc", gridcolor: "#f2f2f2", fixedrange: true, title: {text: "arousal"}, scaleanchor: "x", constrain: "domain"},
      shapes: [{type: "circle", x0: -1, y0: -1, x1: 1, y1: 1, line: {color: "#999", width: 1}}]},
    Object.assign({}, PLOT_CONFIG, {displayModeBar: false})).then(() => {
      circ.on("plotly_click", (ev) => {
        const target = document.getElementById(`face-${ev.points[0].customdata}`);
        if (!target) return;
        target.scrollIntoView({behavior: "smooth", block: "center"});
        target.classList.remove("flash"); void target.offsetWidth; target.classList.add("flash");
      });
      ready();
    });
  }

  // --- the index ---------------------------------------------------------------------------------------
  function renderIndex(d) {
    app.append(header(d.title, `${d.entries.length} result page${d.entries.length === 1 ? "" : "s"}` +
      (d.failures.length ? ` · ${d.failures.length} input${d.failures.length === 1 ? "" : "s"} failed` : ""), false));
    const columns = [
      ["name", "results", (e) => el("a", {href: e.page}, e.name), (e) => e.name],
      ["input", "input", (e) => e.input, (e) => e.input],
      ["faces", "faces found", (e) => e.kind === "video" ? `${e.with_face}/${e.frames} frames` + (e.people ? ` · ${e.people} tracked` : "") : `${e.faces} face${e.faces === 1 ? "" : "s"} in ${e.with_face}/${e.frames} images`, (e) => e.with_face / Math.max(1, e.frames)],
      ["dominant", "dominant expression", (e) => e.dominant ? chip(e.dominant, percent(e.dominant_share)) : "–", (e) => e.dominant || null],
      ["valence", "mean valence", (e) => signed(e.valence), (e) => e.valence],
      ["arousal", "mean arousal", (e) => signed(e.arousal), (e) => e.arousal],
      ["aus", "most active AUs", (e) => topAus(e.top_aus), (e) => e.top_aus && e.top_aus.length ? e.top_aus[0].rate : null],
    ];
    const body = el("tbody");
    let sortKey = null, ascending = true;
    const heads = columns.map(([key, label]) => el("th", {scope: "col", "data-key": key},
      el("button", {type: "button", onclick: () => sortOn(key)}, label)));
    function fill() {
      let rows = d.entries.slice();
      if (sortKey) {
        const value = columns.find((c) => c[0] === sortKey)[3];
        rows.sort((a, b) => {
          const x = value(a), y = value(b);
          if (x === null || x === undefined || y === null || y === undefined) return (x == null) - (y == null);
          const order = typeof x === "number" ? x - y : String(x).localeCompare(String(y));
          return ascending ? order : -order;
        });
      }
      body.replaceChildren(...rows.map((e) => el("tr", {}, columns.map(([key, , cell]) => el("td", {class: key}, cell(e))))));
      heads.forEach((th) => th.setAttribute("aria-sort", th.dataset.key === sortKey ? (ascending ? "ascending" : "descending") : "none"));
    }
    function sortOn(key) { ascending = sortKey === key ? !ascending : true; sortKey = key; fill(); }
    fill();
    app.append(d.entries.length ? el("table", {class: "index", id: "index"}, el("thead", {}, el("tr", {}, heads)), body)
      : el("p", {class: "notice"}, "No results table could be read in this folder."));
    app.append(el("h2", {}, "Inputs that failed"),
      d.failures.length ? el("ul", {class: "failures", id: "failures"}, d.failures.map((f) => el("li", {}, f)))
        : el("p", {class: "muted"}, "none"));
    ready();
  }

  try {
    app.replaceChildren();
    ({video: renderVideo, images: renderImages, index: renderIndex})[DATA.kind](DATA);
  } catch (error) {
    app.append(el("p", {class: "notice"}, `This page could not be drawn: ${error.message}`));
    throw error;
  }
})();
