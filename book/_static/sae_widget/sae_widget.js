/*
 * Watch an SAE unmix the pentagon: a live trainer of a sparse autoencoder on the hidden
 * activations of the book's 5 -> 2 toy model (chapter "Sparse autoencoders").
 *
 * The same SAE, loss and training tricks as toy_lib.train_sae with architecture "relu":
 *
 *   f = ReLU(W_enc^T (x - b_dec) + b_enc),   x_hat = W_dec^T f + b_dec
 *   W_enc: (d_in, d_sae), W_dec: (d_sae, d_in) (row j is latent j's direction), b_enc: (d_sae,),
 *   b_dec: (d_in,): toy_lib's layout without the instance axis
 *   loss = mean over the batch of ||x - x_hat||^2 + l1 * sum_j f_j
 *
 * trained with Adam (PyTorch's update), the decoder rows held at unit norm (the component of
 * each row's gradient along the row removed before the step, the row rescaled to length 1
 * after it), and dead latents resampled as toy_lib does it (Anthropic's recipe): a latent that
 * has not fired for `deadWindow` steps is re-initialised every `resampleEvery` steps on an
 * input of the latest batch drawn with probability proportional to the square of its squared
 * error; its decoder row becomes that input minus b_dec, normalised, its encoder column the
 * same direction at 0.2 x the mean norm of the live latents' encoder columns, its encoder bias
 * 0, and its Adam state is reset. The start is the chapter's (toy_lib's tied_init=False,
 * b_dec_init="zeros"): random unit decoder rows, an independent encoder uniform in
 * +-1/sqrt(d_in), zero biases.
 *
 * The data are the toy model's hidden vectors h = W x, x drawn like toy_lib's data: each
 * feature active with the chapter's probability, its value uniform on [0, 1]. The toy model's
 * weights come from the book's build: the chapter's executed code writes them into the page as
 * <script type="application/json" class="sae-widget-model">{"W": ..., "b": ...,
 * "feature_probability": ...}</script>.
 *
 * Training runs in short slices inside requestAnimationFrame while the widget is on screen
 * (book/_static/widget_kit/widget_kit.js), so the page never freezes. No framework, no build
 * step, no network request; works from file://.
 *
 * For tests and curious readers (nested arrays; params = {W_enc, W_dec, b_enc, b_dec}):
 *   SAETrainer.forward(params, x)              {f, x_hat} for a batch x: (batch, d_in)
 *   SAETrainer.loss(params, x, l1)             {loss, mse, sparsity, l0}
 *   SAETrainer.gradient(params, x, l1)         the gradient of the loss (no decoder projection)
 *   SAETrainer.resampleWeights(params, x)      each input's ||x - x_hat||^4 (resampling's odds)
 *   SAETrainer.resample(params, x, dead, picks) the resampling step with the inputs given
 *   SAETrainer.train(params, batches, options)  the whole recipe on given batches
 *   element.sae                                 the live widget: .W_dec, .step, .bestCosines, ...
 */
(function (root) {
  "use strict";

  // The browser recipe. toy_lib's chapter trains with batches of 1024 at a learning rate of
  // 1e-3 for 20,000 steps, resampling every 2,500 steps the latents silent for 500: minutes.
  // Here batches are smaller, the rate larger and resampling more frequent, so that the
  // directions settle in seconds.
  var RECIPE = {
    batchSize: 256,
    lr: 0.01,
    deadWindow: 25, // a latent silent for this many steps is dead
    resampleEvery: 100, // steps between resamplings (not at the last step)
    resampleScale: 0.2, // a resampled encoder column's norm, relative to the live ones' mean
    maxSteps: 20000, // then the widget stops, like the chapter's 20,000 steps
    stepsPerSecond: 600, // training speed, independent of the screen's frame rate
    frameBudgetMs: 12, // never train for longer than this inside one animation frame
    statsWindow: 100 // the displayed loss and L0 are means over this many recent batches
  };
  var DEFAULTS = { latents: 5, l1: 0.4, resample: true, seed: 1 };
  var LIMITS = { latents: [3, 10], l1: [0, 2] };
  var MATCH = 0.95; // a feature counts as found when a decoder direction has cosine above this
  // Okabe-Ito colours, as toy_lib.plots.FEATURE_COLOURS and the pentagon widget.
  var COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00",
    "#56B4E9", "#F0E442", "#000000"];
  var VIEW = 1.45; // the plot shows [-VIEW, VIEW]^2 of the hidden plane

  function define(kit) {
    function fail(msg) {
      throw new Error("SAETrainer: " + msg);
    }

    // -------------------------------------------------------------- shapes

    function checkMatrix(name, A, rows, cols) {
      kit.checkMatrix(fail, name, A, rows, cols);
    }

    function checkVector(name, v, n) {
      if (!v || v.length !== n) fail(name + " must have length " + n);
      for (var i = 0; i < n; i++) if (!isFinite(v[i])) fail(name + "[" + i + "] is " + v[i] + ": expected a finite number");
    }

    var flatten = kit.flatten;
    var unflatten = kit.unflatten;

    /** Flat copies of nested params {W_enc (d_in, d_sae), W_dec (d_sae, d_in), b_enc, b_dec}. */
    function toState(p) {
      if (!p || !Array.isArray(p.W_dec) || p.W_dec.length === 0) fail("params.W_dec must be a (d_sae, d_in) array");
      var L = p.W_dec.length;
      var d = p.W_dec[0].length;
      checkMatrix("W_dec", p.W_dec, L, d);
      checkMatrix("W_enc", p.W_enc, d, L);
      checkVector("b_enc", p.b_enc, L);
      checkVector("b_dec", p.b_dec, d);
      return { d: d, L: L, Wenc: flatten(p.W_enc, d, L), Wdec: flatten(p.W_dec, L, d),
        benc: Float64Array.from(p.b_enc), bdec: Float64Array.from(p.b_dec) };
    }

    function fromState(S) {
      return { W_enc: unflatten(S.Wenc, S.d, S.L), W_dec: unflatten(S.Wdec, S.L, S.d),
        b_enc: Array.from(S.benc), b_dec: Array.from(S.bdec) };
    }

    function zerosLike(S) {
      return { Wenc: new Float64Array(S.Wenc.length), Wdec: new Float64Array(S.Wdec.length),
        benc: new Float64Array(S.L), bdec: new Float64Array(S.d) };
    }

    var KEYS = ["Wenc", "Wdec", "benc", "bdec"];

    // -------------------------------------------------------------- the SAE (flat arrays)

    /*
     * One input row (xs[row*d .. row*d+d-1]) through the SAE, counted `weight` times (all-zero
     * inputs, most of this data, are computed once per batch). Adds to `acc` the squared error,
     * the L1 sum and the active count; with G, adds the gradient of
     *   loss = 1/B sum_rows ||x - x_hat||^2 + l1/B sum_rows sum_j f_j
     * (PyTorch's ReLU passes no gradient at 0):
     *   g_xhat = 2 (x_hat - x) / B,   g_f = W_dec g_xhat + l1 / B,   g_z = g_f [z > 0]
     *   dW_dec[j] += f_j g_xhat,  dW_enc[:, j] += (x - b_dec) g_z_j,  db_enc += g_z,
     *   db_dec += g_xhat - W_enc g_z.
     */
    function rowPass(S, xs, row, weight, B, l1, acc, G, fired, outF, outX, scratch) {
      var d = S.d;
      var L = S.L;
      var c = scratch.c;
      var f = scratch.f;
      var e = scratch.e;
      var i, j;
      var base = row * d;
      for (i = 0; i < d; i++) c[i] = xs[base + i] - S.bdec[i];
      var l1sum = 0;
      var active = 0;
      for (j = 0; j < L; j++) {
        var z = S.benc[j];
        for (i = 0; i < d; i++) z += c[i] * S.Wenc[i * L + j];
        f[j] = z > 0 ? z : 0;
        if (z > 0) {
          l1sum += z;
          active += 1;
          if (fired) fired[j] = 1;
        }
        if (outF) outF[row * L + j] = f[j];
      }
      var sq = 0;
      for (i = 0; i < d; i++) {
        var xh = S.bdec[i];
        for (j = 0; j < L; j++) if (f[j] > 0) xh += f[j] * S.Wdec[j * d + i];
        if (outX) outX[base + i] = xh;
        e[i] = xh - xs[base + i];
        sq += e[i] * e[i];
      }
      acc.sq += weight * sq;
      acc.l1 += weight * l1sum;
      acc.active += weight * active;
      if (outF) acc.rowSq[row] = sq;
      if (!G) return;
      var gc = scratch.gc;
      for (i = 0; i < d; i++) {
        e[i] *= (2 * weight) / B; // now weight x dL/dx_hat
        G.bdec[i] += e[i];
        gc[i] = 0;
      }
      for (j = 0; j < L; j++) {
        if (!(f[j] > 0)) continue;
        var gz = (l1 * weight) / B;
        for (i = 0; i < d; i++) {
          gz += e[i] * S.Wdec[j * d + i];
          G.Wdec[j * d + i] += f[j] * e[i];
        }
        G.benc[j] += gz;
        for (i = 0; i < d; i++) {
          G.Wenc[i * L + j] += c[i] * gz;
          gc[i] += S.Wenc[i * L + j] * gz;
        }
      }
      for (i = 0; i < d; i++) G.bdec[i] -= gc[i];
    }

    function scratchFor(S) {
      return { c: new Float64Array(S.d), e: new Float64Array(S.d), gc: new Float64Array(S.d),
        f: new Float64Array(S.L) };
    }

    /**
     * A batch xs (B rows of d) through the SAE: returns {loss, mse, sparsity, l0}; with G adds
     * the gradient, with `fired` marks the latents that fired, with outF/outX writes f and x_hat
     * (and then every row is computed on its own, so that per-row errors are exact).
     */
    function batchPass(S, xs, B, l1, G, fired, outF, outX, rowSq) {
      var d = S.d;
      var acc = { sq: 0, l1: 0, active: 0, rowSq: rowSq };
      var scratch = S.scratch || (S.scratch = scratchFor(S));
      var zeros = 0;
      var zeroRow = -1;
      for (var r = 0; r < B; r++) {
        var isZero = !outF;
        if (isZero) {
          for (var i = 0; i < d; i++) {
            if (xs[r * d + i] !== 0) {
              isZero = false;
              break;
            }
          }
        }
        if (isZero) {
          zeros += 1;
          zeroRow = r;
        } else {
          rowPass(S, xs, r, 1, B, l1, acc, G, fired, outF, outX, scratch);
        }
      }
      if (zeros) rowPass(S, xs, zeroRow, zeros, B, l1, acc, G, fired, null, null, scratch);
      var mse = acc.sq / B;
      var sparsity = (l1 * acc.l1) / B;
      return { loss: mse + sparsity, mse: mse, sparsity: sparsity, l0: acc.active / B };
    }

    /** Remove from each decoder row's gradient its component along the (unit) row. */
    function projectDecoderGradient(S, G) {
      var d = S.d;
      for (var j = 0; j < S.L; j++) {
        var dot = 0;
        var i;
        for (i = 0; i < d; i++) dot += G.Wdec[j * d + i] * S.Wdec[j * d + i];
        for (i = 0; i < d; i++) G.Wdec[j * d + i] -= dot * S.Wdec[j * d + i];
      }
    }

    /** Rescale every decoder row to length 1 (toy_lib's clamp at 1e-12 included). */
    function normaliseDecoder(S) {
      var d = S.d;
      for (var j = 0; j < S.L; j++) {
        var n = 0;
        var i;
        for (i = 0; i < d; i++) n += S.Wdec[j * d + i] * S.Wdec[j * d + i];
        n = Math.max(Math.sqrt(n), 1e-12);
        for (i = 0; i < d; i++) S.Wdec[j * d + i] /= n;
      }
    }

    /** Per-row ||x - x_hat||^4: the odds with which resampling picks each input. */
    function rowWeights(S, xs, B) {
      var rowSq = new Float64Array(B);
      batchPass(S, xs, B, 0, null, null, new Float64Array(B * S.L), new Float64Array(B * S.d), rowSq);
      for (var r = 0; r < B; r++) rowSq[r] *= rowSq[r];
      return rowSq;
    }

    /**
     * `n` indices drawn with probability proportional to `w` (like torch.multinomial): without
     * replacement when at least n weights are positive, with it otherwise; all weights 1 when
     * none is positive.
     */
    function drawPicks(w, n, rng) {
      var B = w.length;
      var positive = 0;
      for (var r = 0; r < B; r++) if (w[r] > 0) positive += 1;
      var odds = positive ? Float64Array.from(w) : new Float64Array(B).fill(1);
      var replace = (positive || B) < n;
      var picks = [];
      for (var k = 0; k < n; k++) {
        var total = 0;
        for (r = 0; r < B; r++) total += odds[r];
        var u = rng() * total;
        var pick = -1;
        for (r = 0; r < B; r++) {
          if (odds[r] <= 0) continue;
          pick = r;
          u -= odds[r];
          if (u < 0) break;
        }
        picks.push(pick);
        if (!replace) odds[pick] = 0;
      }
      return picks;
    }

    /**
     * The resampling step on state S (with Adam moments `moments`, a list of objects keyed like
     * S, and `sinceFired`): every latent flagged in `dead` gets a decoder row along an input of
     * the batch xs (B rows), picked by `picks` (one input index per dead latent, in latent
     * order) or drawn with `rng`. Returns {latents, picks, weights}.
     */
    function resampleState(S, xs, B, dead, picks, rng, scale, moments, sinceFired) {
      var d = S.d;
      var L = S.L;
      var latents = [];
      for (var j = 0; j < L; j++) if (dead[j]) latents.push(j);
      if (!latents.length) return { latents: [], picks: [], weights: null };
      var weights = rowWeights(S, xs, B);
      if (picks) {
        if (picks.length !== latents.length) {
          fail("picks must have one input index per dead latent (" + latents.length + "), got " + picks.length);
        }
        for (var k = 0; k < picks.length; k++) {
          if (!(picks[k] >= 0 && picks[k] < B && picks[k] === Math.floor(picks[k]))) {
            fail("picks[" + k + "] = " + picks[k] + ": expected an input index in [0, " + B + ")");
          }
        }
      } else {
        picks = drawPicks(weights, latents.length, rng);
      }
      // The mean encoder-column norm of the live latents, before any change (1 if none lives).
      var sum = 0;
      var alive = 0;
      var i;
      for (j = 0; j < L; j++) {
        if (dead[j]) continue;
        var n2 = 0;
        for (i = 0; i < d; i++) n2 += S.Wenc[i * L + j] * S.Wenc[i * L + j];
        sum += Math.sqrt(n2);
        alive += 1;
      }
      var size = scale * (alive ? sum / alive : 1);
      var v = new Float64Array(d);
      for (k = 0; k < latents.length; k++) {
        j = latents[k];
        var norm = 0;
        for (i = 0; i < d; i++) {
          v[i] = xs[picks[k] * d + i] - S.bdec[i];
          norm += v[i] * v[i];
        }
        norm = Math.sqrt(norm);
        if (norm < 1e-8) {
          // an input at b_dec has no direction: draw one
          if (!rng) fail("picks[" + k + "] is an input at b_dec (no direction) and no generator was given");
          norm = 0;
          for (i = 0; i < d; i++) {
            v[i] = kit.gaussian(rng);
            norm += v[i] * v[i];
          }
          norm = Math.sqrt(norm);
        }
        for (i = 0; i < d; i++) {
          S.Wdec[j * d + i] = v[i] / norm;
          S.Wenc[i * L + j] = (size * v[i]) / norm;
        }
        S.benc[j] = 0;
        for (var m = 0; m < moments.length; m++) {
          for (i = 0; i < d; i++) {
            moments[m].Wdec[j * d + i] = 0;
            moments[m].Wenc[i * L + j] = 0;
          }
          moments[m].benc[j] = 0;
        }
        if (sinceFired) sinceFired[j] = 0;
      }
      return { latents: latents, picks: picks, weights: weights };
    }

    // -------------------------------------------------------------- a training run (no DOM)

    /**
     * The state of one SAE under training: parameters S, Adam moments, the steps since each
     * latent last fired, the step count. `recipe` holds l1, lr, resample (bool), deadWindow,
     * resampleEvery, resampleScale, maxSteps.
     */
    function Run(S, recipe, rng) {
      this.S = S;
      this.recipe = recipe;
      this.rng = rng;
      this.m1 = zerosLike(S);
      this.m2 = zerosLike(S);
      this.G = zerosLike(S);
      this.fired = new Uint8Array(S.L);
      this.sinceFired = new Float64Array(S.L);
      this.step = 0;
      this.nResampled = 0;
    }

    /** Is latent j dead (silent for the last deadWindow steps)? */
    Run.prototype.dead = function () {
      var out = [];
      for (var j = 0; j < this.S.L; j++) out.push(this.sinceFired[j] >= this.recipe.deadWindow);
      return out;
    };

    /**
     * One training step on batch xs (B rows): the loss and gradient, the decoder gradient's
     * projection, Adam, the decoder rows back to unit norm, the dead-latent count, and (when due)
     * resampling, with `picks` or drawn. Returns {loss, mse, sparsity, l0, resampled}.
     */
    Run.prototype.trainStep = function (xs, B, picks) {
      var S = this.S;
      var G = this.G;
      var k;
      for (k = 0; k < KEYS.length; k++) G[KEYS[k]].fill(0);
      this.fired.fill(0);
      var out = batchPass(S, xs, B, this.recipe.l1, G, this.fired, null, null, null);
      for (var j = 0; j < S.L; j++) this.sinceFired[j] = this.fired[j] ? 0 : this.sinceFired[j] + 1;
      projectDecoderGradient(S, G);
      this.step += 1;
      for (k = 0; k < KEYS.length; k++) {
        kit.adamUpdate(S[KEYS[k]], G[KEYS[k]], this.m1[KEYS[k]], this.m2[KEYS[k]], this.step, this.recipe.lr);
      }
      normaliseDecoder(S);
      out.resampled = null;
      var r = this.recipe;
      if (r.resample && this.step % r.resampleEvery === 0 && this.step < r.maxSteps) {
        var dead = this.dead();
        if (dead.indexOf(true) >= 0) {
          out.resampled = resampleState(S, xs, B, dead, picks || null, this.rng, r.resampleScale,
            [this.m1, this.m2], this.sinceFired);
          out.resampled.step = this.step;
          this.nResampled += out.resampled.latents.length;
        }
      }
      return out;
    };

    // -------------------------------------------------------------- pure functions (nested arrays)

    function batchOf(x, d) {
      checkMatrix("x", x, null, d);
      return flatten(x, x.length, d);
    }

    function checkL1(l1) {
      if (!(isFinite(l1) && l1 >= 0)) fail("l1 must be a number >= 0, got " + l1);
      return +l1;
    }

    /** The latents f and reconstruction x_hat of a batch x (batch, d_in). */
    function forward(params, x) {
      var S = toState(params);
      var xs = batchOf(x, S.d);
      var B = x.length;
      var f = new Float64Array(B * S.L);
      var xh = new Float64Array(B * S.d);
      batchPass(S, xs, B, 0, null, null, f, xh, new Float64Array(B));
      return { f: unflatten(f, B, S.L), x_hat: unflatten(xh, B, S.d) };
    }

    /** toy_lib's ReLU-SAE loss on batch x: {loss, mse, sparsity (the l1 term), l0}. */
    function loss(params, x, l1) {
      var S = toState(params);
      return batchPass(S, batchOf(x, S.d), x.length, checkL1(l1), null, null, null, null, null);
    }

    /** The gradient of `loss` by parameter (before the decoder projection), and the loss. */
    function gradient(params, x, l1) {
      var S = toState(params);
      var G = zerosLike(S);
      var out = batchPass(S, batchOf(x, S.d), x.length, checkL1(l1), G, null, null, null, null);
      return { W_enc: unflatten(G.Wenc, S.d, S.L), W_dec: unflatten(G.Wdec, S.L, S.d),
        b_enc: Array.from(G.benc), b_dec: Array.from(G.bdec), loss: out.loss };
    }

    /** Each input's ||x - x_hat||^4, the odds with which resampling picks it. */
    function resampleWeights(params, x) {
      var S = toState(params);
      return Array.from(rowWeights(S, batchOf(x, S.d), x.length));
    }

    /**
     * The resampling step alone: the dead latents (an array of booleans) re-initialised on the
     * inputs x[picks[k]] (one index per dead latent, in latent order). Returns the new params
     * and which latents changed.
     */
    function resample(params, x, dead, picks, scale) {
      var S = toState(params);
      if (!dead || dead.length !== S.L) fail("dead must have one flag per latent (" + S.L + ")");
      var r = resampleState(S, batchOf(x, S.d), x.length, dead, picks, null,
        scale === undefined ? RECIPE.resampleScale : +scale, [], null);
      return { params: fromState(S), latents: r.latents };
    }

    /**
     * The whole recipe from `params` on the given batches (each (batch, d_in)): options l1, lr,
     * resample, deadWindow, resampleEvery, resampleScale, maxSteps (default: the number of
     * batches; resampling never at the last step), picks (a list, one entry per resampling, of
     * input indices; otherwise drawn from a generator seeded with `seed`), snapshots (steps
     * after which to keep W_dec). Returns {params, losses, resamplings, snapshots}.
     */
    function train(params, batches, options) {
      var o = options || {};
      var S = toState(params);
      var recipe = {
        l1: checkL1(o.l1 === undefined ? DEFAULTS.l1 : o.l1),
        lr: o.lr === undefined ? RECIPE.lr : +o.lr,
        resample: o.resample === undefined ? true : !!o.resample,
        deadWindow: o.deadWindow === undefined ? RECIPE.deadWindow : +o.deadWindow,
        resampleEvery: o.resampleEvery === undefined ? RECIPE.resampleEvery : +o.resampleEvery,
        resampleScale: o.resampleScale === undefined ? RECIPE.resampleScale : +o.resampleScale,
        maxSteps: o.maxSteps === undefined ? batches.length : +o.maxSteps
      };
      var run = new Run(S, recipe, kit.mulberry32(o.seed === undefined ? 1 : o.seed));
      var picks = o.picks || null;
      var keep = o.snapshots || [];
      var out = { losses: [], resamplings: [], snapshots: {} };
      for (var t = 0; t < batches.length; t++) {
        var x = batches[t];
        var due = picks && recipe.resample && (t + 1) % recipe.resampleEvery === 0 && t + 1 < recipe.maxSteps;
        var given = null;
        if (due && run.dead().indexOf(true) >= 0) {
          given = picks[out.resamplings.length];
          if (!given) fail("picks has no entry for the resampling at step " + (t + 1));
        }
        var r = run.trainStep(batchOf(x, S.d), x.length, given);
        out.losses.push(r.loss);
        if (r.resampled) {
          out.resamplings.push({ step: r.resampled.step, latents: r.resampled.latents,
            picks: r.resampled.picks, weights: Array.from(r.resampled.weights) });
        }
        if (keep.indexOf(t + 1) >= 0) out.snapshots[t + 1] = unflatten(S.Wdec, S.L, S.d);
      }
      out.params = fromState(S);
      out.dead = run.dead();
      return out;
    }

    // -------------------------------------------------------------- the toy model and its data

    /** Check the toy model {W (hidden, feature), b, feature_probability} read from the page. */
    function checkModel(model) {
      if (!model || !Array.isArray(model.W) || model.W.length === 0) fail("the model needs W, a (hidden, feature) array");
      var m = model.W.length;
      var n = model.W[0].length;
      checkMatrix("model.W", model.W, m, n);
      var p = +model.feature_probability;
      if (!(p > 0 && p <= 1)) fail("model.feature_probability must be in (0, 1], got " + model.feature_probability);
      return { W: flatten(model.W, m, n), m: m, n: n, p: p };
    }

    function clampInt(v, lo, hi, name) {
      v = Math.round(+v);
      if (!isFinite(v)) fail(name + " must be a number in [" + lo + ", " + hi + "], got " + v);
      return Math.min(hi, Math.max(lo, v));
    }

    function clampReal(v, lo, hi, name) {
      v = +v;
      if (!isFinite(v)) fail(name + " must be a number in [" + lo + ", " + hi + "], got " + v);
      return Math.min(hi, Math.max(lo, v));
    }

    /**
     * An SAE training live on the toy model's activations: `new Trainer({model, latents, l1,
     * resample, seed})`. One stream of random numbers per run (seeded): first the initial
     * parameters, then the batches and the resamplings.
     */
    function Trainer(opts) {
      opts = opts || {};
      this.model = checkModel(opts.model);
      this.latents = clampInt(opts.latents === undefined ? DEFAULTS.latents : opts.latents,
        LIMITS.latents[0], LIMITS.latents[1], "latents");
      this.l1 = clampReal(opts.l1 === undefined ? DEFAULTS.l1 : opts.l1, LIMITS.l1[0], LIMITS.l1[1], "l1");
      this.resample = opts.resample === undefined ? DEFAULTS.resample : !!opts.resample;
      this.seed = (opts.seed === undefined ? DEFAULTS.seed : +opts.seed) >>> 0;
      this.batchSize = opts.batchSize || RECIPE.batchSize;
      var d = this.model.m;
      var L = this.latents;
      var rng = kit.mulberry32(this.seed);
      // toy_lib's start with tied_init=False, b_dec_init="zeros": unit random decoder rows, an
      // encoder uniform in +-1/sqrt(d_in), zero biases.
      var S = { d: d, L: L, Wenc: new Float64Array(d * L), Wdec: new Float64Array(L * d),
        benc: new Float64Array(L), bdec: new Float64Array(d) };
      for (var k = 0; k < L * d; k++) S.Wdec[k] = kit.gaussian(rng);
      normaliseDecoder(S);
      var bound = 1 / Math.sqrt(d);
      for (k = 0; k < d * L; k++) S.Wenc[k] = (rng() * 2 - 1) * bound;
      this.run = new Run(S, {
        l1: this.l1,
        lr: opts.lr || RECIPE.lr,
        resample: this.resample,
        deadWindow: RECIPE.deadWindow,
        resampleEvery: RECIPE.resampleEvery,
        resampleScale: RECIPE.resampleScale,
        maxSteps: RECIPE.maxSteps
      }, rng);
      this.rng = rng;
      this.xs = new Float64Array(this.batchSize * d);
      this.recent = [];
      this.sums = { mse: 0, l0: 0 };
      this.lastResampling = null;
    }

    /** Draw a batch of hidden vectors h = W x into this.xs. */
    Trainer.prototype.sample = function () {
      var md = this.model;
      var xs = this.xs;
      var rng = this.rng;
      xs.fill(0);
      for (var r = 0; r < this.batchSize; r++) {
        for (var f = 0; f < md.n; f++) {
          if (rng() < md.p) {
            var v = rng();
            for (var i = 0; i < md.m; i++) xs[r * md.m + i] += v * md.W[i * md.n + f];
          }
        }
      }
      return xs;
    };

    /** One training step on a fresh batch. */
    Trainer.prototype.trainStep = function () {
      var out = this.run.trainStep(this.sample(), this.batchSize, null);
      if (out.resampled) this.lastResampling = out.resampled;
      this.recent.push(out);
      this.sums.mse += out.mse;
      this.sums.l0 += out.l0;
      if (this.recent.length > RECIPE.statsWindow) {
        var old = this.recent.shift();
        this.sums.mse -= old.mse;
        this.sums.l0 -= old.l0;
      }
      return out;
    };

    Object.defineProperties(Trainer.prototype, {
      step: { get: function () { return this.run.step; } },
      finished: { get: function () { return this.run.step >= RECIPE.maxSteps; } },
      /** Mean squared error over the last statsWindow batches (NaN before the first step). */
      mse: { get: function () { return this.recent.length ? this.sums.mse / this.recent.length : NaN; } },
      /** Mean number of active latents per input over the same batches. */
      l0: { get: function () { return this.recent.length ? this.sums.l0 / this.recent.length : NaN; } },
      nDead: { get: function () { return this.run.dead().filter(Boolean).length; } }
    });

    Trainer.prototype.params = function () {
      return fromState(this.run.S);
    };

    /** The toy model's feature directions as unit vectors: (feature, hidden). */
    Trainer.prototype.featureDirections = function () {
      var md = this.model;
      var out = [];
      for (var f = 0; f < md.n; f++) {
        var v = [];
        var n = 0;
        for (var i = 0; i < md.m; i++) {
          v.push(md.W[i * md.n + f]);
          n += v[i] * v[i];
        }
        n = Math.sqrt(n) || 1;
        out.push(v.map(function (a) { return a / n; }));
      }
      return out;
    };

    /** Each true feature's largest cosine with a decoder direction (toy_lib.metrics.max_cosines). */
    Trainer.prototype.bestCosines = function () {
      var S = this.run.S;
      var dirs = this.featureDirections();
      return dirs.map(function (u) {
        var best = -Infinity;
        for (var j = 0; j < S.L; j++) {
          var c = 0;
          for (var i = 0; i < S.d; i++) c += u[i] * S.Wdec[j * S.d + i];
          best = Math.max(best, c);
        }
        return best;
      });
    };

    // -------------------------------------------------------------- the widget (DOM + SVG)

    var el = kit.el;
    var svg = kit.svg;
    function readModel(rootEl) {
      var node = rootEl.querySelector("script.sae-widget-model") ||
        document.querySelector("script.sae-widget-model");
      if (!node) return null;
      return JSON.parse(node.textContent);
    }

    function arrowHead(x, y, size) {
      // A small triangle at (x, y) pointing away from the origin.
      var r = Math.hypot(x, y) || 1;
      var ux = x / r;
      var uy = y / r;
      var bx = x - ux * size;
      var by = y - uy * size;
      var px = -uy * size * 0.5;
      var py = ux * size * 0.5;
      return [x, y, bx + px, by + py, bx - px, by - py].map(function (v) { return v.toFixed(4); }).join(" ");
    }

    /** Build the widget inside `rootEl`; returns the controller stored as rootEl.sae. */
    function Widget(rootEl, model) {
      var self = this;
      this.root = rootEl;
      this.toy = model; // the toy model, as read from the page
      this.userPaused = false;
      this.pacer = new kit.Pacer();
      var frame = kit.layout(rootEl, "sae-widget", "Live trainer of a sparse autoencoder on the 5 to 2 toy model",
        VIEW, "The toy model's feature directions (coloured) and the SAE's decoder directions (dark)");
      var s = frame.svg;
      this.dataLayer = svg("g", { class: "sae-widget-data" }, s);
      this.dots = [];
      // The toy model's feature directions (unit length, like the decoder rows): faint arrows
      // in the features' colours, with their numbers. They do not move.
      var md = checkModel(model);
      var features = svg("g", { class: "sae-widget-features" }, s);
      for (var f = 0; f < md.n; f++) {
        var r = Math.hypot(md.W[f], md.W[md.n + f]) || 1;
        var x = md.W[f] / r;
        var y = md.W[md.n + f] / r;
        var g = svg("g", { class: "sae-widget-feature", "data-feature": f }, features);
        svg("line", { x1: 0, y1: 0, x2: x, y2: -y, stroke: COLOURS[f % COLOURS.length] }, g);
        var label = svg("text", { x: 1.2 * x, y: -1.2 * y, fill: COLOURS[f % COLOURS.length],
          "font-size": 0.16, "text-anchor": "middle", "dominant-baseline": "central" }, g);
        label.textContent = String(f);
      }
      this.decoderLayer = svg("g", { class: "sae-widget-decoder" }, s);
      this.decoderArrows = [];

      var panel = frame.panel;
      var readout = frame.readout;
      this.stepText = el("div", { class: "sae-widget-step" }, readout);
      this.lossText = el("div", { class: "sae-widget-loss" }, readout);
      this.l0Text = el("div", { class: "sae-widget-l0" }, readout);
      this.deadText = el("div", { class: "sae-widget-dead" }, readout);
      this.resampledText = el("div", { class: "sae-widget-resampled" }, readout);
      this.statusText = el("div", { class: "toy-widget-status sae-widget-status" }, readout);
      var cosBox = el("div", { class: "sae-widget-cosines" }, panel);
      var cosTitle = el("div", { class: "sae-widget-cosines-title" }, cosBox);
      cosTitle.textContent = "best cosine of each feature with a decoder direction:";
      var cosRow = el("div", { class: "sae-widget-cosine-row" }, cosBox);
      this.cosCells = [];
      for (f = 0; f < md.n; f++) {
        var cell = el("span", { class: "sae-widget-cosine", "data-feature": f }, cosRow);
        var sw = el("span", { class: "sae-widget-swatch" }, cell);
        sw.style.background = COLOURS[f % COLOURS.length];
        var txt = el("span", {}, cell);
        this.cosCells.push(txt);
      }

      this.l1Control = kit.slider(panel, frame.id, "sae-widget", "l1", "L1 coefficient λ =", LIMITS.l1[0],
        LIMITS.l1[1], 0.05);
      this.latentsControl = kit.slider(panel, frame.id, "sae-widget", "latents", "latents =", LIMITS.latents[0],
        LIMITS.latents[1], 1);
      this.resampleBox = kit.checkbox(el("div", { class: "toy-widget-control" }, panel), "sae-widget", "resample",
        "resample dead latents");
      kit.buttons(this, panel, "sae-widget");

      this.l1Control.input.addEventListener("input", function () {
        self.restart({ l1: +self.l1Control.input.value });
      });
      this.latentsControl.input.addEventListener("input", function () {
        self.restart({ latents: +self.latentsControl.input.value });
      });
      this.resampleBox.addEventListener("change", function () {
        self.restart({ resample: self.resampleBox.checked });
      });

      var dset = rootEl.dataset;
      this.restart({
        latents: dset.latents === undefined ? DEFAULTS.latents : +dset.latents,
        l1: dset.l1 === undefined ? DEFAULTS.l1 : +dset.l1,
        resample: dset.resample === undefined ? DEFAULTS.resample : dset.resample !== "false",
        seed: dset.seed === undefined ? DEFAULTS.seed : +dset.seed
      });
      kit.animate(this, rootEl);
      this.update();
    }

    Widget.prototype.restart = function (opts) {
      var old = this.trainer || {};
      opts = opts || {};
      function pick(key) {
        return opts[key] !== undefined ? opts[key] : old[key];
      }
      this.trainer = new Trainer({ model: this.toy, latents: pick("latents"), l1: pick("l1"),
        resample: pick("resample"), seed: pick("seed") });
      this.l1Control.input.value = this.trainer.l1;
      this.latentsControl.input.value = this.trainer.latents;
      this.resampleBox.checked = this.trainer.resample;
      this.buildDecoderArrows();
      this.pacer.reset();
      this.update();
      return this;
    };

    Widget.prototype.buildDecoderArrows = function () {
      while (this.decoderLayer.firstChild) this.decoderLayer.removeChild(this.decoderLayer.firstChild);
      this.decoderArrows = [];
      for (var j = 0; j < this.trainer.latents; j++) {
        var g = svg("g", { class: "sae-widget-latent", "data-latent": j }, this.decoderLayer);
        var line = svg("line", { x1: 0, y1: 0, x2: 0, y2: 0 }, g);
        var head = svg("polygon", { points: "0 0 0 0 0 0" }, g);
        this.decoderArrows.push({ g: g, line: line, head: head });
      }
    };

    // pause, resume, isRunning, frame, status: the shared ones (widget_kit.js), with these hooks.
    kit.live(Widget.prototype);

    Widget.prototype.finished = function () {
      return this.trainer.finished;
    };

    Widget.prototype.stepsPerSecond = function () {
      return RECIPE.stepsPerSecond;
    };

    Widget.prototype.frameBudgetMs = function () {
      return RECIPE.frameBudgetMs;
    };

    /** Redraw the arrows, the data, the readout and the data attributes from the trainer. */
    Widget.prototype.update = function () {
      var tr = this.trainer;
      var S = tr.run.S;
      var dead = tr.run.dead();
      for (var j = 0; j < S.L; j++) {
        var x = S.Wdec[j * S.d];
        var y = -S.Wdec[j * S.d + 1]; // SVG's y axis points down
        var a = this.decoderArrows[j];
        a.line.setAttribute("x2", (x * 0.94).toFixed(4));
        a.line.setAttribute("y2", (y * 0.94).toFixed(4));
        a.head.setAttribute("points", arrowHead(x, y, 0.1));
        a.g.setAttribute("class", "sae-widget-latent" + (dead[j] ? " sae-widget-dead-latent" : ""));
      }
      // The latest batch's non-zero inputs, as small dots (at most 40).
      var xs = tr.xs;
      var shown = 0;
      for (var r = 0; r < tr.batchSize && shown < 40 && tr.step > 0; r++) {
        var hx = xs[r * S.d];
        var hy = xs[r * S.d + 1];
        if (hx === 0 && hy === 0) continue;
        if (shown >= this.dots.length) this.dots.push(svg("circle", { r: 0.02 }, this.dataLayer));
        this.dots[shown].setAttribute("cx", hx.toFixed(4));
        this.dots[shown].setAttribute("cy", (-hy).toFixed(4));
        this.dots[shown].removeAttribute("visibility");
        shown += 1;
      }
      for (var k = shown; k < this.dots.length; k++) this.dots[k].setAttribute("visibility", "hidden");

      var cos = tr.bestCosines();
      var found = 0;
      for (var f = 0; f < cos.length; f++) {
        this.cosCells[f].textContent = f + ": " + cos[f].toFixed(3);
        this.cosCells[f].parentNode.classList.toggle("sae-widget-found", cos[f] > MATCH);
        if (cos[f] > MATCH) found += 1;
      }
      var mse = tr.mse;
      var l0 = tr.l0;
      var nDead = tr.nDead;
      this.stepText.textContent = "step " + tr.step.toLocaleString("en-US");
      this.lossText.textContent = "reconstruction loss " + (isFinite(mse) ? mse.toExponential(2) : "–");
      this.l0Text.textContent = "L0 " + (isFinite(l0) ? l0.toFixed(3) : "–") + " latents per input";
      this.deadText.textContent = "dead latents " + nDead + " of " + tr.latents;
      this.resampledText.textContent = tr.resample ? "resampled so far " + tr.run.nResampled : "resampling off";
      var status = this.status();
      this.statusText.textContent = status;
      this.pauseButton.textContent = this.userPaused ? "Resume" : "Pause";
      this.l1Control.value.textContent = tr.l1.toFixed(2);
      this.latentsControl.value.textContent = String(tr.latents);
      this.seedText.textContent = "seed " + tr.seed;
      var dset = this.root.dataset;
      dset.step = tr.step;
      dset.found = found;
      dset.dead = nDead;
      dset.state = status;
    };

    // Read-only views for tests and for readers typing in the browser console.
    Object.defineProperties(Widget.prototype, {
      params: { get: function () { return this.trainer.params(); } },
      W_dec: { get: function () { return this.trainer.params().W_dec; } },
      step: { get: function () { return this.trainer.step; } },
      mse: { get: function () { return this.trainer.mse; } },
      l0: { get: function () { return this.trainer.l0; } },
      nDead: { get: function () { return this.trainer.nDead; } },
      dead: { get: function () { return this.trainer.run.dead(); } },
      nResampled: { get: function () { return this.trainer.run.nResampled; } },
      bestCosines: { get: function () { return this.trainer.bestCosines(); } },
      latents: { get: function () { return this.trainer.latents; } },
      l1: { get: function () { return this.trainer.l1; } },
      resample: { get: function () { return this.trainer.resample; } },
      seed: { get: function () { return this.trainer.seed; } },
      running: { get: function () { return this.isRunning(); } },
      model: { get: function () { return JSON.parse(JSON.stringify(this.toy)); } },
      recipe: { get: function () { return JSON.parse(JSON.stringify(RECIPE)); } }
    });

    var api = {
      forward: forward,
      loss: loss,
      gradient: gradient,
      resampleWeights: resampleWeights,
      resample: resample,
      train: train,
      drawPicks: drawPicks,
      Trainer: Trainer,
      RECIPE: RECIPE,
      DEFAULTS: DEFAULTS,
      MATCH: MATCH
    };
    root.SAETrainer = api;
    if (typeof module !== "undefined" && module.exports) module.exports = api;
    // Every .sae-widget of the page; the no-JavaScript fallback (the executed toy_lib figure)
    // is not needed once one runs. Without the toy model there is nothing to train: the widget
    // says so and the fallback stays.
    api.initAll = kit.startAll(".sae-widget", "sae", ".sae-widget-fallback", function (node) {
      var model = readModel(node);
      if (model) return new Widget(node, model);
      node.textContent = "(The live SAE trainer found no toy model on this page.)";
      return null;
    });
    return api;
  }

  if (root.WidgetKit) define(root.WidgetKit);
  else (root.widgetKitWaiting = root.widgetKitWaiting || []).push(define);
})(typeof globalThis !== "undefined" ? globalThis : this);
