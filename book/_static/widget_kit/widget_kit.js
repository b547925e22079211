/*
 * What the book's live trainers share (book/_static/pentagon/pentagon.js and
 * book/_static/sae_widget/sae_widget.js): a seeded random generator, PyTorch's Adam update,
 * shape checks, the widget's frame (plot, panel, sliders, buttons; styled by widget_kit.css),
 * and the pacing that trains a few steps per animation frame while the widget is on screen.
 *
 * Jupyter Book adds every .js file under book/_static to every page, in no fixed order. So a
 * widget script does not assume this file ran first: it calls its definition `define(WidgetKit)`
 * when the kit is there, and otherwise queues `define` in `widgetKitWaiting`, which this file
 * runs when it loads. Either way every definition runs before the page's DOMContentLoaded.
 *
 * Plain JavaScript: no framework, no build step, no network request.
 */
(function (root) {
  "use strict";

  // ---------------------------------------------------------------- random numbers

  /** mulberry32: a small seeded generator of uniform numbers in [0, 1). */
  function mulberry32(seed) {
    var a = seed >>> 0;
    return function () {
      a = (a + 0x6d2b79f5) >>> 0;
      var t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  /** A standard normal sample (Box-Muller) from a uniform generator. */
  function gaussian(rng) {
    var u1 = 1 - rng(); // in (0, 1]: log is finite
    var u2 = rng();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  // ---------------------------------------------------------------- Adam

  /** PyTorch's Adam betas and eps (torch.optim.Adam, and toy_lib's optimiser with no decay). */
  var ADAM = { beta1: 0.9, beta2: 0.999, eps: 1e-8 };

  /**
   * One Adam step on a flat parameter P with gradient G and moments M1, M2 (all typed arrays of
   * one length), at step t (1-based) and learning rate lr: PyTorch's update,
   *   P -= lr / (1 - beta1^t) * M1 / (sqrt(M2) / sqrt(1 - beta2^t) + eps).
   */
  function adamUpdate(P, G, M1, M2, t, lr) {
    var c1 = 1 - Math.pow(ADAM.beta1, t);
    var c2 = Math.sqrt(1 - Math.pow(ADAM.beta2, t));
    for (var i = 0; i < P.length; i++) {
      M1[i] = ADAM.beta1 * M1[i] + (1 - ADAM.beta1) * G[i];
      M2[i] = ADAM.beta2 * M2[i] + (1 - ADAM.beta2) * G[i] * G[i];
      P[i] -= ((lr / c1) * M1[i]) / (Math.sqrt(M2[i]) / c2 + ADAM.eps);
    }
  }

  // ---------------------------------------------------------------- shapes

  /**
   * Throw (through `fail(message)`) unless A is an array of `rows` rows (any number when rows is
   * null), each an array of `cols` finite numbers.
   */
  function checkMatrix(fail, name, A, rows, cols) {
    if (!Array.isArray(A) || (rows !== null && A.length !== rows)) {
      fail(name + " must be an array of " + (rows === null ? "rows" : rows + " rows"));
    }
    for (var r = 0; r < A.length; r++) {
      if (!Array.isArray(A[r]) && !ArrayBuffer.isView(A[r])) fail(name + "[" + r + "] is not an array");
      if (A[r].length !== cols) fail(name + "[" + r + "] has length " + A[r].length + ": expected " + cols);
      for (var c = 0; c < cols; c++) {
        if (!isFinite(A[r][c])) fail(name + "[" + r + "][" + c + "] is " + A[r][c] + ": expected a finite number");
      }
    }
  }

  /** Nested rows (m, n) -> a flat row-major Float64Array. */
  function flatten(A, m, n) {
    var out = new Float64Array(m * n);
    for (var r = 0; r < m; r++) for (var c = 0; c < n; c++) out[r * n + c] = +A[r][c];
    return out;
  }

  /** A flat row-major array -> nested rows (m, n) of plain numbers. */
  function unflatten(flat, m, n) {
    var out = [];
    for (var r = 0; r < m; r++) out.push(Array.prototype.slice.call(flat, r * n, (r + 1) * n));
    return out;
  }

  // ---------------------------------------------------------------- DOM and SVG

  var SVG_NS = "http://www.w3.org/2000/svg";

  /** A new element `tag` with attributes `attrs`, appended to `parent` (in namespace `ns`). */
  function el(tag, attrs, parent, ns) {
    var node = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
    for (var key in attrs) {
      if (Object.prototype.hasOwnProperty.call(attrs, key)) node.setAttribute(key, attrs[key]);
    }
    if (parent) parent.appendChild(node);
    return node;
  }

  function svg(tag, attrs, parent) {
    return el(tag, attrs, parent, SVG_NS);
  }

  // ---------------------------------------------------------------- pacing

  /**
   * Trains at a steady number of steps per second, a slice per animation frame, and never
   * longer than `budgetMs` inside one frame: a slow machine trains more slowly instead of
   * freezing the page.
   */
  function Pacer() {
    this.reset();
  }

  /** Forget the time of the last frame (after a pause, a restart or a scroll away). */
  Pacer.prototype.reset = function () {
    this.lastTime = null;
    this.owed = 0;
  };

  /**
   * Call `step()` as many times as `rate` steps a second owe since the last frame (time `now`,
   * in ms; at most a tenth of a second's worth after a stall), while `more()` allows; returns
   * the number of steps taken.
   */
  Pacer.prototype.run = function (now, rate, budgetMs, step, more) {
    if (this.lastTime !== null) this.owed += (Math.min(now - this.lastTime, 100) * rate) / 1000;
    else this.owed += 1;
    this.lastTime = now;
    var start = performance.now();
    var done = 0;
    while (this.owed >= 1 && more()) {
      step();
      done += 1;
      this.owed -= 1;
      if (performance.now() - start > budgetMs) {
        this.owed = 0;
        break;
      }
    }
    return done;
  };

  /**
   * Drive `widget` while it is on screen: sets `widget.visible` (true where the browser has no
   * IntersectionObserver), calls `widget.visibilityChanged()` when it changes and
   * `widget.frame(now)` on every animation frame.
   */
  function animate(widget, rootEl) {
    widget.visible = typeof IntersectionObserver === "undefined";
    if (!widget.visible) {
      new IntersectionObserver(function (entries) {
        widget.visible = entries[entries.length - 1].isIntersecting;
        widget.visibilityChanged();
      }).observe(rootEl);
    }
    requestAnimationFrame(function tick(now) {
      widget.frame(now);
      requestAnimationFrame(tick);
    });
  }

  // ---------------------------------------------------------------- the widget's frame

  var uid = 0;

  /**
   * Lay out a widget in `rootEl`: a square SVG plot of [-view, view]^2 with the unit circle and
   * the axes, and a panel beside it whose first block is the read-out. Every element gets the
   * shared class (toy-widget-...) and the widget's own (prefix-...). Returns {svg, panel,
   * readout, id} (id: a prefix for the ids of the widget's inputs).
   */
  function layout(rootEl, prefix, label, view, plotLabel) {
    uid += 1;
    rootEl.classList.add("toy-widget", prefix + "-ready");
    rootEl.setAttribute("role", "group");
    rootEl.setAttribute("aria-label", label);
    var plotBox = el("div", { class: "toy-widget-plot " + prefix + "-plot" }, rootEl);
    var s = svg("svg", { viewBox: -view + " " + -view + " " + 2 * view + " " + 2 * view, role: "img",
      "aria-label": plotLabel }, plotBox);
    svg("circle", { cx: 0, cy: 0, r: 1, class: "toy-widget-unit" }, s);
    svg("line", { x1: -view, y1: 0, x2: view, y2: 0, class: "toy-widget-axis" }, s);
    svg("line", { x1: 0, y1: -view, x2: 0, y2: view, class: "toy-widget-axis" }, s);
    var panel = el("div", { class: "toy-widget-panel " + prefix + "-panel" }, rootEl);
    var readout = el("div", { class: "toy-widget-readout " + prefix + "-readout" }, panel);
    return { svg: s, panel: panel, readout: readout, id: prefix + "-" + uid };
  }

  /** A labelled range input in a new row of `panel`: {input, value (the <output> showing it)}. */
  function slider(panel, id, prefix, key, label, min, max, step) {
    var row = el("div", { class: "toy-widget-control " + prefix + "-control" }, panel);
    var lab = el("label", { for: id + "-" + key }, row);
    lab.textContent = label + " ";
    var value = el("output", { for: id + "-" + key }, lab);
    var input = el("input", { id: id + "-" + key, type: "range", min: min, max: max, step: step,
      class: prefix + "-" + key }, row);
    return { input: input, value: value };
  }

  /** A checkbox with its text, in `parent`: the <input>. */
  function checkbox(parent, prefix, key, text) {
    var lab = el("label", { class: "toy-widget-check " + prefix + "-" + key + "-label" }, parent);
    var box = el("input", { type: "checkbox", class: prefix + "-" + key }, lab);
    lab.appendChild(document.createTextNode(" " + text));
    return box;
  }

  /**
   * The row of buttons of `widget` in `panel`: Pause/Resume (widget.pause, widget.resume),
   * "Restart (new seed)" (widget.restart({seed: the next seed})) and the seed read-out. Sets
   * widget.pauseButton, widget.restartButton, widget.seedText; returns the row.
   */
  function buttons(widget, panel, prefix) {
    var row = el("div", { class: "toy-widget-buttons " + prefix + "-buttons" }, panel);
    widget.pauseButton = el("button", { type: "button", class: prefix + "-pause" }, row);
    widget.restartButton = el("button", { type: "button", class: prefix + "-restart" }, row);
    widget.restartButton.textContent = "Restart (new seed)";
    widget.seedText = el("span", { class: "toy-widget-seed " + prefix + "-seed" }, row);
    widget.pauseButton.addEventListener("click", function () {
      if (widget.userPaused) widget.resume();
      else widget.pause();
    });
    widget.restartButton.addEventListener("click", function () {
      widget.restart({ seed: widget.trainer.seed + 1 });
    });
    return row;
  }

  // ---------------------------------------------------------------- running

  /**
   * The methods every live widget shares, copied onto its prototype by `live(proto)`. The widget
   * has `trainer` (with trainStep() and seed), `pacer` (a Pacer), `userPaused`, and the methods
   * update() (redraw), finished() (no more steps), stepsPerSecond() and frameBudgetMs().
   */
  var LIVE = {
    pause: function () {
      this.userPaused = true;
      this.update();
    },
    resume: function () {
      this.userPaused = false;
      this.pacer.reset();
      this.update();
    },
    /** Called by `animate` when the widget scrolls on or off screen. */
    visibilityChanged: function () {
      this.pacer.reset();
      this.update();
    },
    /** Is the widget training right now (not paused, on screen, not finished)? */
    isRunning: function () {
      return !this.userPaused && this.visible && !this.finished();
    },
    /** Run this frame's share of training steps, then redraw. */
    frame: function (now) {
      if (!this.isRunning()) {
        this.pacer.reset();
        return;
      }
      var self = this;
      this.pacer.run(now, this.stepsPerSecond(), this.frameBudgetMs(),
        function () { self.trainer.trainStep(); }, function () { return !self.finished(); });
      this.update();
    },
    /** What the widget is doing, in words. */
    status: function () {
      if (this.finished()) return "finished";
      if (this.userPaused) return "paused";
      if (!this.visible) return "waiting (off screen)";
      return "training";
    }
  };

  function live(proto) {
    for (var key in LIVE) if (Object.prototype.hasOwnProperty.call(LIVE, key)) proto[key] = LIVE[key];
  }

  /**
   * Start a widget on every element matching `selector` that has none yet (`make(element)`
   * returns it, or null when it cannot start), stored as element[property]; once one runs, hide
   * the no-JavaScript `fallback` elements. Runs at DOMContentLoaded (at once if that is past) and
   * returns the function, to call again after adding elements.
   */
  function startAll(selector, property, fallback, make) {
    function initAll() {
      var roots = document.querySelectorAll(selector);
      var started = 0;
      for (var i = 0; i < roots.length; i++) {
        if (roots[i][property]) continue;
        var widget = make(roots[i]);
        if (!widget) continue;
        roots[i][property] = widget;
        started += 1;
      }
      if (!started) return;
      var nodes = document.querySelectorAll(fallback);
      for (var j = 0; j < nodes.length; j++) {
        nodes[j].hidden = true;
        nodes[j].style.display = "none";
      }
    }
    if (typeof document !== "undefined") {
      if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", initAll);
      else initAll();
    }
    return initAll;
  }

  var api = {
    mulberry32: mulberry32,
    gaussian: gaussian,
    ADAM: ADAM,
    adamUpdate: adamUpdate,
    checkMatrix: checkMatrix,
    flatten: flatten,
    unflatten: unflatten,
    SVG_NS: SVG_NS,
    el: el,
    svg: svg,
    layout: layout,
    slider: slider,
    checkbox: checkbox,
    buttons: buttons,
    Pacer: Pacer,
    animate: animate,
    live: live,
    startAll: startAll
  };
  root.WidgetKit = api;
  if (typeof module !== "undefined" && module.exports) module.exports = api;

  var waiting = root.widgetKitWaiting || [];
  root.widgetKitWaiting = [];
  for (var i = 0; i < waiting.length; i++) waiting[i](api);
})(typeof globalThis !== "undefined" ? globalThis : this);
