/* Chart helpers for the dashboard: time series on uPlot (canvas), bars as small inline SVG. */
"use strict";

const Charts = (() => {
  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  const palette = () => ["--c1", "--c2", "--c3", "--c4", "--c5", "--c6", "--c7", "--c8"].map(css);
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;"}[c]));

  /* A time-series chart that keeps its uPlot instance and follows its container's width. */
  class Line {
    constructor(el, legendEl, series, opts = {}) {
      this.el = el; this.legendEl = legendEl; this.series = series; this.opts = opts; this.plot = null;
      new ResizeObserver(() => this.plot && this.plot.setSize(this.size())).observe(el);
    }
    size() { return {width: Math.max(200, this.el.clientWidth), height: this.el.clientHeight || 210}; }
    build() {
      const colors = palette(), grid = css("--grid"), muted = css("--muted");
      const axis = {stroke: muted, grid: {stroke: grid, width: 1}, ticks: {stroke: grid, width: 1}, font: "11px system-ui"};
      const yFmt = this.opts.yFormat || ((v) => v);
      const opts = {
        ...this.size(), legend: {show: false}, cursor: {drag: {x: false, y: false}},
        scales: {x: {time: true}, y: {range: (u, lo, hi) => [0, hi > 0 ? hi * 1.12 : 1]}},
        axes: [axis, {...axis, size: 64, values: (u, vals) => vals.map(yFmt)}],
        series: [{}, ...this.series.map((s, i) => {
          const c = colors[s.color ?? i];
          return {label: s.label, stroke: c, width: 1.8, spanGaps: true,
                  fill: s.fill ? c + "26" : undefined, paths: s.bars ? uPlot.paths.bars({size: [0.7, 40]}) : undefined};
        })],
      };
      if (this.plot) this.plot.destroy();
      this.el.textContent = "";
      this.plot = new uPlot(opts, this.data || [[], ...this.series.map(() => [])], this.el);
      this.legendEl.innerHTML = this.series.map((s, i) =>
        `<span><i style="background:${colors[s.color ?? i]}"></i>${esc(s.label)}</span>`).join("");
    }
    set(data) {
      this.data = data;
      if (!this.plot) this.build(); else this.plot.setData(data);
    }
  }

  /* Horizontal grouped bars: rows of {label, values:[...], note}. One colour per value. */
  function groupedBars(el, rows, keys, fmt) {
    if (!rows.length) { el.innerHTML = `<div class="empty">no requests in this window yet</div>`; return; }
    const colors = palette(), w = el.clientWidth || 600, labelW = 130, noteW = 150, barH = 9, gap = 3;
    const rowH = keys.length * (barH + gap) + 10, h = rows.length * rowH + 18;
    const max = Math.max(1e-9, ...rows.flatMap((r) => r.values.filter((v) => v != null)));
    const scale = (w - labelW - noteW) / max;
    let out = `<svg viewBox="0 0 ${w} ${h}" height="${h}" role="img">`;
    rows.forEach((r, i) => {
      const y0 = i * rowH + 4;
      out += `<text x="0" y="${y0 + rowH / 2}" dominant-baseline="middle">${esc(r.label)}</text>`;
      r.values.forEach((v, k) => {
        const bw = v == null ? 0 : Math.max(1.5, v * scale), y = y0 + k * (barH + gap);
        out += `<rect x="${labelW}" y="${y}" width="${bw}" height="${barH}" rx="2" fill="${colors[k]}"><title>${esc(keys[k])}: ${esc(fmt(v))}</title></rect>`;
        out += `<text class="m" x="${labelW + bw + 5}" y="${y + barH / 2}" dominant-baseline="middle">${esc(fmt(v))}</text>`;
      });
    });
    out += `<g transform="translate(${labelW},${h - 6})">` + keys.map((k, i) =>
      `<rect x="${i * 110}" y="-9" width="10" height="10" rx="2" fill="${colors[i]}"/><text class="m" x="${i * 110 + 14}" y="0">${esc(k)}</text>`).join("") + "</g>";
    el.innerHTML = out + "</svg>";
  }

  /* One stacked bar of shares (0..1) with a legend underneath: [{label, share, color}]. */
  function stacked(parts, width) {
    const colors = palette(), h = 16;
    let x = 0, out = `<svg viewBox="0 0 ${width} ${h}" height="${h}" preserveAspectRatio="none" role="img">`;
    parts.forEach((p) => {
      const bw = p.share * width;
      out += `<rect x="${x}" y="0" width="${Math.max(0, bw - 1)}" height="${h}" rx="2" fill="${colors[p.color % colors.length]}"><title>${esc(p.label)}: ${(p.share * 100).toFixed(1)}%</title></rect>`;
      x += bw;
    });
    return out + "</svg>";
  }

  /* Simple horizontal bars with a value each: [{label, value, text}]. */
  function bars(el, rows, fmt) {
    if (!rows.length) { el.innerHTML = `<div class="empty">nothing in this window yet</div>`; return; }
    const colors = palette(), w = el.clientWidth || 600, labelW = 140, noteW = 230, barH = 14, rowH = 22;
    const h = rows.length * rowH + 4, max = Math.max(1e-12, ...rows.map((r) => r.value));
    let out = `<svg viewBox="0 0 ${w} ${h}" height="${h}" role="img">`;
    rows.forEach((r, i) => {
      const y = i * rowH + 3, bw = Math.max(1.5, (r.value / max) * (w - labelW - noteW));
      out += `<text x="0" y="${y + barH / 2}" dominant-baseline="middle">${esc(r.label)}</text>`;
      out += `<rect x="${labelW}" y="${y}" width="${bw}" height="${barH}" rx="3" fill="${r.color || colors[i % colors.length]}"/>`;
      out += `<text class="m" x="${labelW + bw + 6}" y="${y + barH / 2}" dominant-baseline="middle">${esc(r.text ?? fmt(r.value))}</text>`;
    });
    el.innerHTML = out + "</svg>";
  }

  return {Line, groupedBars, stacked, bars, palette, css, esc};
})();
