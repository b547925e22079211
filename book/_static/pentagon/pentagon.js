/*
 * Watch the pentagon form: a live trainer for the 5 -> 2 toy model of superposition.
 *
 * The same model, data and loss as toy_lib (book chapter "Toy models of superposition"):
 *
 *   x' = ReLU(W^T W x + b),   W: (hidden=2, feature=5),  b: (feature,)
 *   each feature active with probability p = 1 - sparsity, value uniform on [0, 1]
 *   loss = mean over batch and features of I_f (x_f - x'_f)^2,  I_f = decay^f
 *
 * trained with Adam (PyTorch's defaults: betas 0.9, 0.999, eps 1e-8) from Xavier-normal
 * weights and zero bias. Plain JavaScript: no framework, no build step, no network request.
 * Training runs in short slices inside requestAnimationFrame, so the page stays responsive
 * (a Web Worker would be refused on pages opened straight from disk, file://). The seeded
 * generator, Adam and the pacing are shared with the SAE widget: book/_static/widget_kit/.
 *
 * Jupyter Book adds every .js file under book/_static to every page; this script does nothing
 * on a page without a <div class="pentagon-widget"> element.
 *
 * For tests and curious readers:
 *   PentagonTrainer.forward(W, b, x)            x' for a batch x: (batch, feature)
 *   PentagonTrainer.loss(W, b, x, importance)   the importance-weighted loss (a number)
 *   PentagonTrainer.gradient(W, b, x, importance)  {W, b, loss}: the gradient training uses
 *   PentagonTrainer.adamTrain(W, b, batches, importance, lr)  Adam steps on given batches
 *   element.pentagon                            the live widget: .W, .b, .step, .loss, ...
 * W is nested arrays (hidden, feature), b (feature,), x (batch, feature): toy_lib's layout
 * without the instance axis.
 */
(function (root) {
  "use strict";

  function define(kit) {
    var N_FEATURES = 5;
    var N_HIDDEN = 2;
    // The browser recipe: smaller batches and a larger learning rate than toy_lib's default
    // (batch 1024, lr 1e-3, 10,000 steps), so the pentagon forms in seconds instead of minutes.
    var RECIPE = {
      batchSize: 256,
      lr: 0.01,
      stepsPerSecond: 600, // training speed, independent of the screen's frame rate
      slowMotion: 0.1, // the "slow motion" box trains at this fraction of that speed
      maxSteps: 10000, // then the widget stops, like toy_lib's 10,000 steps
      frameBudgetMs: 12, // never train for longer than this inside one animation frame
      lossWindow: 100 // the displayed loss is the mean over this many recent batches
    };
    // Okabe-Ito colours (distinguishable with the common colour-vision deficiencies).
    var COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00"];
    var VIEW = 1.45; // the plot shows [-VIEW, VIEW]^2 of the hidden plane

    var mulberry32 = kit.mulberry32;
    var gaussian = kit.gaussian;
    var adamUpdate = kit.adamUpdate;

    // ---------------------------------------------------------------- shapes

    function fail(msg) {
      throw new Error("PentagonTrainer: " + msg);
    }

    function checkMatrix(name, A, rows, cols) {
      kit.checkMatrix(fail, name, A, rows, cols);
    }

    /** Check the shapes of W (hidden, feature), b (feature,), x (batch, feature), importance. */
    function shapes(W, b, x, importance) {
      if (!Array.isArray(W) || W.length === 0) fail("W must be a non-empty (hidden, feature) array");
      var n = W[0].length;
      checkMatrix("W", W, W.length, n);
      if (!b || b.length !== n) fail("b must have length " + n + " (one entry per feature)");
      if (x !== undefined) checkMatrix("x", x, null, n);
      if (importance !== undefined && (!importance || importance.length !== n)) {
        fail("importance must have length " + n + " (one entry per feature)");
      }
      return { m: W.length, n: n };
    }

    var flatten = kit.flatten;
    var unflatten = kit.unflatten;

    // ---------------------------------------------------------------- the model (flat arrays)

    /*
     * One pass over a batch: the loss, and (when gW, gb are given) the gradient of the loss
     * accumulated into gW (m*n, row-major (hidden, feature)) and gb (n).
     *
     *   h = W x,  o = W^T h + b,  x' = ReLU(o),  L = 1/(B n) sum_{batch, f} I_f (x'_f - x_f)^2
     *   dL/do_f = 2/(B n) I_f (x'_f - x_f) [o_f > 0]      (PyTorch's ReLU has gradient 0 at 0)
     *   dL/dW[k, f] = sum_batch dL/do_f h_k + (sum_g dL/do_g W[k, g]) x_f   (W is used twice)
     *   dL/db_f = sum_batch dL/do_f
     */
    function batchPass(W, b, xs, B, m, n, imp, gW, gb, out) {
      var h = new Float64Array(m);
      var g = new Float64Array(m);
      var total = 0;
      var scale = 2 / (B * n);
      for (var s = 0; s < B; s++) {
        var row = s * n;
        var k, f;
        for (k = 0; k < m; k++) {
          var acc = 0;
          for (f = 0; f < n; f++) acc += W[k * n + f] * xs[row + f];
          h[k] = acc;
          g[k] = 0;
        }
        for (f = 0; f < n; f++) {
          var o = b[f];
          for (k = 0; k < m; k++) o += W[k * n + f] * h[k];
          var y = o > 0 ? o : 0;
          if (out) out[row + f] = y;
          var e = y - xs[row + f];
          total += imp[f] * e * e;
          if (gW && o > 0) {
            var d = scale * imp[f] * e;
            gb[f] += d;
            for (k = 0; k < m; k++) {
              gW[k * n + f] += d * h[k];
              g[k] += d * W[k * n + f];
            }
          }
        }
        if (gW) {
          for (f = 0; f < n; f++) {
            var xf = xs[row + f];
            if (xf !== 0) for (k = 0; k < m; k++) gW[k * n + f] += g[k] * xf;
          }
        }
      }
      return total / (B * n);
    }

    // ---------------------------------------------------------------- pure functions (nested arrays)

    /** x' = ReLU(W^T W x + b) for a batch x of shape (batch, feature). */
    function forward(W, b, x) {
      var s = shapes(W, b, x);
      var out = new Float64Array(x.length * s.n);
      var ones = new Float64Array(s.n);
      batchPass(flatten(W, s.m, s.n), Float64Array.from(b), flatten(x, x.length, s.n), x.length,
        s.m, s.n, ones, null, null, out);
      return unflatten(out, x.length, s.n);
    }

    /** Mean over batch and features of importance_f (x_f - x'_f)^2, as in toy_lib. */
    function loss(W, b, x, importance) {
      var s = shapes(W, b, x, importance);
      return batchPass(flatten(W, s.m, s.n), Float64Array.from(b), flatten(x, x.length, s.n),
        x.length, s.m, s.n, Float64Array.from(importance), null, null, null);
    }

    /** The gradient of `loss` with respect to W and b, computed by the code training uses. */
    function gradient(W, b, x, importance) {
      var s = shapes(W, b, x, importance);
      var gW = new Float64Array(s.m * s.n);
      var gb = new Float64Array(s.n);
      var L = batchPass(flatten(W, s.m, s.n), Float64Array.from(b), flatten(x, x.length, s.n),
        x.length, s.m, s.n, Float64Array.from(importance), gW, gb, null);
      return { W: unflatten(gW, s.m, s.n), b: Array.from(gb), loss: L };
    }

    /** Adam steps from (W, b) on the given batches; returns the new {W, b} and each step's loss. */
    function adamTrain(W, b, batches, importance, lr) {
      var s = shapes(W, b, undefined, importance);
      var Wf = flatten(W, s.m, s.n);
      var bf = Float64Array.from(b);
      var opt = { mW: new Float64Array(Wf.length), vW: new Float64Array(Wf.length),
        mb: new Float64Array(s.n), vb: new Float64Array(s.n) };
      var imp = Float64Array.from(importance);
      var losses = [];
      for (var t = 1; t <= batches.length; t++) {
        var x = batches[t - 1];
        checkMatrix("batches[" + (t - 1) + "]", x, null, s.n);
        var gW = new Float64Array(Wf.length);
        var gb = new Float64Array(s.n);
        losses.push(batchPass(Wf, bf, flatten(x, x.length, s.n), x.length, s.m, s.n, imp, gW, gb, null));
        adamUpdate(Wf, gW, opt.mW, opt.vW, t, lr);
        adamUpdate(bf, gb, opt.mb, opt.vb, t, lr);
      }
      return { W: unflatten(Wf, s.m, s.n), b: Array.from(bf), losses: losses };
    }

    // ---------------------------------------------------------------- the trainer (no DOM)

    function clampSparsity(v) {
      v = +v;
      if (!isFinite(v)) fail("sparsity must be a number in [0, 0.99], got " + v);
      return Math.min(0.99, Math.max(0, v));
    }

    function clampDecay(v) {
      v = +v;
      if (!isFinite(v)) fail("decay must be a number in (0, 1], got " + v);
      return Math.min(1, Math.max(0.01, v));
    }

    /** A 5 -> 2 toy model being trained: `new Trainer({sparsity, decay, seed})`. */
    function Trainer(opts) {
      opts = opts || {};
      this.sparsity = clampSparsity(opts.sparsity === undefined ? 0.9 : opts.sparsity);
      this.decay = clampDecay(opts.decay === undefined ? 1 : opts.decay);
      this.seed = (opts.seed === undefined ? 1 : +opts.seed) >>> 0;
      this.batchSize = opts.batchSize || RECIPE.batchSize;
      this.lr = opts.lr || RECIPE.lr;
      var m = N_HIDDEN;
      var n = N_FEATURES;
      this.importance = new Float64Array(n);
      for (var f = 0; f < n; f++) this.importance[f] = Math.pow(this.decay, f);
      // One stream of random numbers per run: first the initial weights, then the batches.
      this.rng = mulberry32(this.seed);
      var std = Math.sqrt(2 / (m + n)); // Xavier-normal, as toy_lib.init_weights
      this.Wf = new Float64Array(m * n);
      for (var i = 0; i < m * n; i++) this.Wf[i] = std * gaussian(this.rng);
      this.bf = new Float64Array(n);
      this.mW = new Float64Array(m * n);
      this.vW = new Float64Array(m * n);
      this.mb = new Float64Array(n);
      this.vb = new Float64Array(n);
      this.gW = new Float64Array(m * n);
      this.gb = new Float64Array(n);
      this.xs = new Float64Array(this.batchSize * n);
      this.step = 0;
      this.lastLoss = NaN;
      this.recent = [];
      this.recentSum = 0;
    }

    /** One training step on a fresh batch; returns that batch's loss (before the update). */
    Trainer.prototype.trainStep = function () {
      var n = N_FEATURES;
      var p = 1 - this.sparsity;
      var xs = this.xs;
      var rng = this.rng;
      for (var i = 0; i < xs.length; i++) xs[i] = rng() < p ? rng() : 0;
      this.gW.fill(0);
      this.gb.fill(0);
      var L = batchPass(this.Wf, this.bf, xs, this.batchSize, N_HIDDEN, n, this.importance,
        this.gW, this.gb, null);
      this.step += 1;
      adamUpdate(this.Wf, this.gW, this.mW, this.vW, this.step, this.lr);
      adamUpdate(this.bf, this.gb, this.mb, this.vb, this.step, this.lr);
      this.lastLoss = L;
      this.recent.push(L);
      this.recentSum += L;
      if (this.recent.length > RECIPE.lossWindow) this.recentSum -= this.recent.shift();
      return L;
    };

    /** Mean loss over the last RECIPE.lossWindow batches (NaN before the first step). */
    Trainer.prototype.meanLoss = function () {
      return this.recent.length ? this.recentSum / this.recent.length : NaN;
    };

    Trainer.prototype.weights = function () {
      return unflatten(this.Wf, N_HIDDEN, N_FEATURES);
    };

    // ---------------------------------------------------------------- the widget (DOM + SVG)

    var el = kit.el;
    var svg = kit.svg;

    function fmt(v, digits) {
      return (+v).toFixed(digits);
    }

    /** Build the widget inside `root`; returns the controller stored as root.pentagon. */
    function Widget(root) {
      var self = this;
      this.root = root;
      this.userPaused = false;
      this.pacer = new kit.Pacer();
      var frame = kit.layout(root, "pentagon", "Live trainer of the 5 to 2 toy model", VIEW,
        "The five feature directions W_i as arrows in the hidden plane");
      var s = frame.svg;
      this.arrows = [];
      for (var f = 0; f < N_FEATURES; f++) {
        var g = svg("g", { class: "pentagon-arrow", "data-feature": f }, s);
        var line = svg("line", { x1: 0, y1: 0, x2: 0, y2: 0, stroke: COLOURS[f] }, g);
        var dot = svg("circle", { r: 0.045, fill: COLOURS[f] }, g);
        var label = svg("text", { "font-size": 0.13, fill: COLOURS[f], "text-anchor": "middle",
          "dominant-baseline": "central" }, g);
        label.textContent = String(f);
        this.arrows.push({ line: line, dot: dot, label: label });
      }

      var panel = frame.panel;
      this.stepText = el("span", { class: "pentagon-step" }, el("div", {}, frame.readout));
      this.lossText = el("span", { class: "pentagon-loss" }, el("div", {}, frame.readout));
      this.statusText = el("div", { class: "toy-widget-status pentagon-status" }, frame.readout);
      this.sparsityControl = kit.slider(panel, frame.id, "pentagon", "sparsity", "sparsity S =", 0, 0.99, 0.01);
      this.decayControl = kit.slider(panel, frame.id, "pentagon", "decay", "importance decay =", 0.5, 1, 0.05);
      this.importanceText = el("div", { class: "pentagon-importance" }, panel);
      var buttons = kit.buttons(this, panel, "pentagon");
      this.slowBox = kit.checkbox(buttons, "pentagon", "slow", "slow motion");

      this.sparsityControl.input.addEventListener("input", function () {
        self.restart({ sparsity: +self.sparsityControl.input.value });
      });
      this.decayControl.input.addEventListener("input", function () {
        self.restart({ decay: +self.decayControl.input.value });
      });
      this.slowBox.addEventListener("change", function () {
        self.pacer.reset();
      });

      var d = root.dataset;
      this.restart({
        sparsity: d.sparsity === undefined ? 0.9 : +d.sparsity,
        decay: d.decay === undefined ? 1 : +d.decay,
        seed: d.seed === undefined ? 1 : +d.seed
      });
      // Train only while the widget is on screen: readers arrive to watch it form.
      kit.animate(this, root);
      this.update();
    }

    Widget.prototype.restart = function (opts) {
      var old = this.trainer;
      opts = opts || {};
      this.trainer = new Trainer({
        sparsity: opts.sparsity !== undefined ? opts.sparsity : old.sparsity,
        decay: opts.decay !== undefined ? opts.decay : old.decay,
        seed: opts.seed !== undefined ? opts.seed : old.seed
      });
      this.sparsityControl.input.value = this.trainer.sparsity;
      this.decayControl.input.value = this.trainer.decay;
      this.pacer.reset();
      this.update();
      return this;
    };

    // pause, resume, isRunning, frame, status: the shared ones (widget_kit.js), with these hooks.
    kit.live(Widget.prototype);

    Widget.prototype.finished = function () {
      return this.trainer.step >= RECIPE.maxSteps;
    };

    Widget.prototype.stepsPerSecond = function () {
      return RECIPE.stepsPerSecond * (this.slowBox.checked ? RECIPE.slowMotion : 1);
    };

    Widget.prototype.frameBudgetMs = function () {
      return RECIPE.frameBudgetMs;
    };

    /** Redraw the arrows, the readout and the data attributes from the trainer's state. */
    Widget.prototype.update = function () {
      var tr = this.trainer;
      var W = tr.Wf;
      for (var f = 0; f < N_FEATURES; f++) {
        var x = W[f];
        var y = W[N_FEATURES + f];
        var r = Math.hypot(x, y);
        var scale = r > VIEW * 0.92 ? (VIEW * 0.92) / r : 1; // keep long arrows on the plot
        var px = x * scale;
        var py = -y * scale; // SVG's y axis points down
        var a = this.arrows[f];
        a.line.setAttribute("x2", px);
        a.line.setAttribute("y2", py);
        a.dot.setAttribute("cx", px);
        a.dot.setAttribute("cy", py);
        var shown = r * scale;
        var off = shown > 1e-9 ? 0.13 / shown : 0; // the label sits just beyond the tip
        a.label.setAttribute("x", px + (shown > 1e-9 ? px * off : 0.13));
        a.label.setAttribute("y", py + py * off);
        // Labels of arrows shrunk to (almost) nothing would pile up on the origin.
        a.label.setAttribute("visibility", shown < 0.1 ? "hidden" : "visible");
        a.line.setAttribute("stroke-width", 0.025 + 0.035 * tr.importance[f]);
      }
      var loss = tr.meanLoss();
      this.stepText.textContent = "step " + tr.step.toLocaleString("en-US");
      this.lossText.textContent = "loss " + (isFinite(loss) ? loss.toExponential(2) : "–");
      var status = this.status();
      this.statusText.textContent = status;
      this.pauseButton.textContent = this.userPaused ? "Resume" : "Pause";
      this.sparsityControl.value.textContent = fmt(tr.sparsity, 2);
      this.decayControl.value.textContent = fmt(tr.decay, 2);
      var imp = [];
      for (var i = 0; i < N_FEATURES; i++) imp.push(fmt(tr.importance[i], 2));
      this.importanceText.textContent = "importance I = " + imp.join(", ") +
        "; feature active with probability " + fmt(1 - tr.sparsity, 2);
      this.seedText.textContent = "seed " + tr.seed;
      var d = this.root.dataset;
      d.step = tr.step;
      d.loss = isFinite(loss) ? loss : "";
      d.state = status;
    };

    // Read-only views for tests and for readers typing in the browser console.
    Object.defineProperties(Widget.prototype, {
      W: { get: function () { return this.trainer.weights(); } },
      b: { get: function () { return Array.from(this.trainer.bf); } },
      step: { get: function () { return this.trainer.step; } },
      loss: { get: function () { return this.trainer.meanLoss(); } },
      batchLoss: { get: function () { return this.trainer.lastLoss; } },
      sparsity: { get: function () { return this.trainer.sparsity; } },
      decay: { get: function () { return this.trainer.decay; } },
      importance: { get: function () { return Array.from(this.trainer.importance); } },
      seed: { get: function () { return this.trainer.seed; } },
      running: { get: function () { return this.isRunning(); } },
      slowMotion: { get: function () { return this.slowBox.checked; } },
      recipe: { get: function () { return JSON.parse(JSON.stringify(RECIPE)); } }
    });

    var api = {
      forward: forward,
      loss: loss,
      gradient: gradient,
      adamTrain: adamTrain,
      mulberry32: mulberry32,
      Trainer: Trainer,
      RECIPE: RECIPE
    };
    root.PentagonTrainer = api;
    if (typeof module !== "undefined" && module.exports) module.exports = api;
    // Every .pentagon-widget of the page; the no-JavaScript fallback (the executed toy_lib
    // figure) is not needed once one runs.
    api.initAll = kit.startAll(".pentagon-widget", "pentagon", ".pentagon-fallback", function (node) {
      return new Widget(node);
    });
    return api;
  }

  // The shared helpers (book/_static/widget_kit/widget_kit.js) may load before or after this file.
  if (root.WidgetKit) define(root.WidgetKit);
  else (root.widgetKitWaiting = root.widgetKitWaiting || []).push(define);
})(typeof globalThis !== "undefined" ? globalThis : this);
