/* code.c — an image run written out as a PyTorch script (am_run_code): the
 * bridge from "what did the engine do?" to code a student can read, change
 * and run with torch alone. Every constant follows run.cpp (and maco.cpp for
 * the phase-only parameterization, its crops and NAdam); the script's
 * comments say which part of the engine each block mirrors. */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actmax.h"
#include "errbuf.h"
#include "objective_py.h"

/* ================================================================ text buffer */

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static void addf(sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + (size_t)n + 1) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) return;
        b->p = q;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* A Python string literal (double quotes, escapes for quotes, backslashes
 * and control bytes). */
static void add_pystr(sbuf *b, const char *s) {
    addf(b, "\"");
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            addf(b, "\\%c", ch);
        else if (ch < 0x20)
            addf(b, "\\x%02x", ch);
        else
            addf(b, "%c", ch);
    }
    addf(b, "\"");
}

/* float32 values as a Python string literal of their little-endian bytes in
 * base64, cut into lines (a magnitude spectrum is thousands of numbers). */
static void add_b64_floats(sbuf *b, const float *v, size_t count) {
    static const char k64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = (const unsigned char *)v;
    size_t len = count * sizeof(float), col = 0;
    addf(b, "(\n    \"");
    for (size_t i = 0; i < len; i += 3) {
        unsigned int x = (unsigned int)p[i] << 16;
        if (i + 1 < len) x |= (unsigned int)p[i + 1] << 8;
        if (i + 2 < len) x |= p[i + 2];
        addf(b, "%c%c%c%c", k64[(x >> 18) & 63], k64[(x >> 12) & 63], i + 1 < len ? k64[(x >> 6) & 63] : '=',
             i + 2 < len ? k64[x & 63] : '=');
        if ((col += 4) >= 88 && i + 3 < len) {
            addf(b, "\"\n    \"");
            col = 0;
        }
    }
    addf(b, "\"\n)");
}

/* The shortest decimal that reads back as the same float32 (what a user
 * typed, usually): "0.05" for 0.05f. */
static const char *f32_text(float v, char buf[32]) {
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, 32, "%.*g", prec, (double)v);
        if (strtof(buf, NULL) == v) break;
    }
    return buf;
}

/* Adds "name", to a Python list's items unless it is there already. */
static void add_layer(sbuf *layers, const char *name, int len) {
    char item[512];
    snprintf(item, sizeof item, "\"%.*s\"", len, name);
    if (layers->p && strstr(layers->p, item)) return;
    addf(layers, "%s%s", layers->len ? ", " : "", item);
}

/* ================================================================ objectives */

/* The objective as a Python expression (am__objective_python, from the
 * engine's own parse tree), each layer it reads added to layers (a Python
 * list literal). */
static int objective_py(am_model *m, const char *src, sbuf *out, sbuf *layers, char *err, size_t n) {
    int nl = am_model_num_labels(m);
    const char **labels = nl > 0 ? calloc((size_t)nl, sizeof *labels) : NULL;
    if (nl > 0 && !labels) return fail(err, n, AM_E_NOMEM, "out of memory");
    for (int i = 0; i < nl; i++) labels[i] = am_model_label(m, i);
    char *expr = NULL, *names = NULL;
    int rc = am__objective_python(src, labels, nl > 0 ? nl : 0, &expr, &names, err, n);
    free(labels);
    if (rc == AM_OK) {
        addf(out, "%s", expr);
        for (char *p = names, *e; p && *p; p = e + 1) {
            e = strchr(p, '\n');
            if (!e) break;
            add_layer(layers, p, (int)(e - p));
        }
    }
    free(expr);
    free(names);
    return rc;
}

/* ================================================================ the script */

static const char k_helpers[] =
    "\n"
    "# ---------------------------------------------------------------- layers\n"
    "def read_layers(model, x, names):\n"
    "    \"\"\"model(x), and the output of each named module read with forward hooks:\n"
    "    'path' (its last call), 'path#k' (call k), 'path:j' (element j of a tuple),\n"
    "    'output' (the model's own output).\"\"\"\n"
    "    modules = dict(model.named_modules())\n"
    "    acts, calls, hooks = {}, {}, []\n"
    "    for name in names:\n"
    "        path = name.split(\"#\")[0].split(\":\")[0]\n"
    "        if path == \"output\" and path not in modules:\n"
    "            continue\n"
    "        if path not in modules:\n"
    "            raise SystemExit(f\"no module {path!r} in the model; modules: {list(modules)[1:]}\")\n"
    "        call = int(name.split(\"#\")[1].split(\":\")[0]) if \"#\" in name else None\n"
    "        elem = int(name.split(\":\")[1]) if \":\" in name else None\n"
    "\n"
    "        def hook(mod, inputs, out, name=name, call=call, elem=elem):\n"
    "            calls[name] = calls.get(name, 0) + 1\n"
    "            if call is None or calls[name] == call:\n"
    "                acts[name] = out[elem] if elem is not None else out\n"
    "        try:\n"
    "            hooks.append(modules[path].register_forward_hook(hook))\n"
    "        except RuntimeError:\n"
    "            raise SystemExit(\"forward hooks do not run on TorchScript modules: set `model` to \"\n"
    "                             \"the model's Python class with the file's weights, e.g. \"\n"
    "                             \"model = MyNet(); model.load_state_dict(torch.jit.load(MODEL).state_dict())\")\n"
    "    try:\n"
    "        out = model(x)\n"
    "    except RuntimeError:\n"
    "        # The engine runs the network only up to the deepest layer it reads, so\n"
    "        # an image of another size (size=) may not fit the layers after it.\n"
    "        if \"output\" in names or any(n not in acts for n in names):\n"
    "            raise\n"
    "        out = None\n"
    "    finally:\n"
    "        for h in hooks:\n"
    "            h.remove()\n"
    "    acts.setdefault(\"output\", out)\n"
    "    return acts\n"
    "\n"
    "\n"
    "def direction(act, v, p=0.0):\n"
    "    \"\"\"Lucid's direction objective: the dot product of the channel vector (the\n"
    "    first axis of act, one image's activation) with v at each position left,\n"
    "    times max(0.1, cos)^p, averaged over the positions.\"\"\"\n"
    "    t = act.movedim(0, -1)\n"
    "    v = v.to(t.dtype)\n"
    "    dot = (t * v).sum(-1)\n"
    "    if p:\n"
    "        cos = dot / (t.norm(2, dim=-1) + 1e-4) / (v.norm() + 1e-4)\n"
    "        dot = dot * cos.clamp_min(0.1).pow(p)\n"
    "    return dot.mean()\n"
    "\n"
    "\n"
    "def load_vector(path):\n"
    "    \"\"\"A direction saved with numpy.save (.npy) or torch.save (.pt), flattened.\"\"\"\n"
    "    if path.endswith(\".npy\"):\n"
    "        import numpy\n"
    "        return torch.from_numpy(numpy.load(path).astype(\"float64\")).reshape(-1)\n"
    "    return torch.load(path).double().reshape(-1)\n"
    "\n"
    "\n"
    "def diversity(act):\n"
    "    \"\"\"Lucid's diversity term: minus the mean cosine similarity of the items'\n"
    "    Gram matrices (0 for a batch of one).\"\"\"\n"
    "    B = act.shape[0]\n"
    "    if B < 2 or act.dim() < 2:\n"
    "        return act.new_zeros(())\n"
    "    f = act.reshape(B, act.shape[1], -1)\n"
    "    gram = torch.bmm(f, f.transpose(1, 2)).reshape(B, -1)\n"
    "    gram = gram / (gram.norm(2, dim=1, keepdim=True) + 1e-10)\n"
    "    sim = gram @ gram.t()\n"
    "    return -(sim.sum() - sim.diagonal().sum()) / B\n"
    "\n"
    "\n"
    "# ---------------------------------------------------------------- the image\n"
    "def color_matrix():\n"
    "    \"\"\"Lucid's colour correlation (square root of ImageNet's colour\n"
    "    covariance), normalized by its largest column norm.\"\"\"\n"
    "    m = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])\n"
    "    return m / m.norm(2, dim=0).max()\n"
    "\n"
    "\n"
    "def fft_scale(h, w, decay):\n"
    "    \"\"\"1/f^decay per frequency (numpy's fftfreq(h) x rfftfreq(w)): low\n"
    "    frequencies take larger steps, so noise does not dominate.\"\"\"\n"
    "    iy = torch.arange(h, dtype=torch.float64)\n"
    "    fy = torch.where(iy <= (h - 1) // 2, iy, iy - h).div(h).unsqueeze(1)\n"
    "    fx = torch.arange(w // 2 + 1, dtype=torch.float64).div(w).unsqueeze(0)\n"
    "    freqs = torch.sqrt(fx * fx + fy * fy)\n"
    "    s = 1.0 / torch.pow(torch.clamp_min(freqs, 1.0 / max(w, h)), decay)\n"
    "    return s.float().reshape(1, 1, h, w // 2 + 1, 1)\n"
    "\n"
    "\n"
    "def standardize(t):\n"
    "    \"\"\"Zero mean, unit standard deviation per batch item (MACO).\"\"\"\n"
    "    flat = t.reshape(t.shape[0], -1)\n"
    "    mean = flat.mean(1, keepdim=True)\n"
    "    sd = flat.std(1, unbiased=False, keepdim=True)\n"
    "    return ((flat - mean) / (sd + 1e-5)).reshape(t.shape)\n"
    "\n"
    "\n"
    "CMAT_T = color_matrix().t().contiguous()\n"
    "SCALE = fft_scale(H, W, DECAY_POWER) if PARAM == \"fft\" else None\n"
    "\n"
    "\n"
    "def render(p):\n"
    "    \"\"\"Parameters -> the display image (B, C, H, W) in [0, 1].\"\"\"\n"
    "    if PARAM == \"maco\":\n"
    "        # Only the phase is optimized; the magnitude stays MAG.\n"
    "        ph = standardize(p)\n"
    "        spec = torch.polar(MAG.expand_as(ph), ph)\n"
    "        t = standardize(torch.fft.irfft2(spec, s=(H, W), dim=(-2, -1), norm=\"ortho\"))\n"
    "    elif PARAM == \"fft\":\n"
    "        spec = torch.view_as_complex(SCALE * p)\n"
    "        t = torch.fft.irfft2(spec, s=(H, W), dim=(-2, -1), norm=\"ortho\") / 4.0  # Lucid's 4\n"
    "    else:\n"
    "        t = p\n"
    "    if DECORRELATE:\n"
    "        t = torch.matmul(t.permute(0, 2, 3, 1), CMAT_T).permute(0, 3, 1, 2)\n"
    "    if PARAM == \"maco\":\n"
    "        t = t * CONTRAST\n"
    "    return torch.sigmoid(t)\n"
    "\n"
    "\n"
    "def invert(display):\n"
    "    \"\"\"The parameters whose render is display (a start image); MACO keeps\n"
    "    only its phase, the magnitude being fixed.\"\"\"\n"
    "    t = torch.logit(display.clamp(1e-4, 1 - 1e-4))\n"
    "    if DECORRELATE:\n"
    "        t = torch.matmul(t.permute(0, 2, 3, 1), torch.inverse(CMAT_T)).permute(0, 3, 1, 2)\n"
    "    if PARAM == \"pixel\":\n"
    "        return t\n"
    "    if PARAM == \"maco\":\n"
    "        return torch.angle(torch.fft.rfft2(t, dim=(-2, -1), norm=\"ortho\"))\n"
    "    spec = torch.fft.rfft2(t * 4.0, s=(H, W), dim=(-2, -1), norm=\"ortho\")\n"
    "    return torch.view_as_real(spec) / SCALE\n"
    "\n"
    "\n"
    "def to_model(display):\n"
    "    \"\"\"Display space -> what the model takes: the value range, then (x - mean) / std.\"\"\"\n"
    "    x = display\n"
    "    if RANGE != (0.0, 1.0):\n"
    "        x = RANGE[0] + (RANGE[1] - RANGE[0]) * x\n"
    "    return (x - torch.tensor(MEAN).reshape(1, -1, 1, 1)) / torch.tensor(STD).reshape(1, -1, 1, 1)\n"
    "\n"
    "\n"
    "# ---------------------------------------------------------------- transforms\n"
    "class MT19937_64:\n"
    "    \"\"\"C++'s std::mt19937_64: the engine draws every random transform from it,\n"
    "    each as (next number) % (number of choices).\"\"\"\n"
    "    M = (1 << 64) - 1\n"
    "\n"
    "    def __init__(self, seed):\n"
    "        self.mt = [seed & self.M]\n"
    "        for i in range(1, 312):\n"
    "            prev = self.mt[-1]\n"
    "            self.mt.append((6364136223846793005 * (prev ^ (prev >> 62)) + i) & self.M)\n"
    "        self.i = 312\n"
    "\n"
    "    def __call__(self):\n"
    "        mt = self.mt\n"
    "        if self.i >= 312:\n"
    "            for k in range(312):\n"
    "                x = (mt[k] & 0xFFFFFFFF80000000) | (mt[(k + 1) % 312] & 0x7FFFFFFF)\n"
    "                mt[k] = mt[(k + 156) % 312] ^ (x >> 1) ^ (0xB5026F5AA96619E9 if x & 1 else 0)\n"
    "            self.i = 0\n"
    "        y = mt[self.i]\n"
    "        self.i += 1\n"
    "        y ^= (y >> 29) & 0x5555555555555555\n"
    "        y ^= (y << 17) & 0x71D67FFFEDA60000\n"
    "        y ^= (y << 37) & 0xFFF7EEE000000000\n"
    "        y ^= y >> 43\n"
    "        return y & self.M\n"
    "\n"
    "\n"
    "def uniform(rng, a, b):\n"
    "    \"\"\"std::uniform_real_distribution<double>(a, b) over the engine's generator\n"
    "    (libstdc++: one 64-bit draw divided by 2^64).\"\"\"\n"
    "    u = rng() / 2.0 ** 64\n"
    "    if u >= 1.0:\n"
    "        u = 1.0 - 2.0 ** -53\n"
    "    return u * (b - a) + a\n"
    "\n"
    "\n"
    "def crop_side(step):\n"
    "    \"\"\"MACO's crop side at step (1-based), a fraction of the canvas side:\n"
    "    linear from CROP_MAX to CROP_MIN over the run.\"\"\"\n"
    "    if STEPS <= 1:\n"
    "        return CROP_MAX\n"
    "    return CROP_MAX + f32(CROP_MIN - CROP_MAX) * ((step - 1) / (STEPS - 1))\n"
    "\n"
    "\n"
    "def maco_views(canvas, side, rng):\n"
    "    \"\"\"CROPS random crops of each image, each of side in [0.8 side, side] of\n"
    "    the canvas, resized to the model's input, plus noise; image b's crops are\n"
    "    rows b * CROPS ... b * CROPS + CROPS - 1.\"\"\"\n"
    "    Hc, Wc = canvas.shape[2], canvas.shape[3]\n"
    "    views = []\n"
    "    for b in range(canvas.shape[0]):\n"
    "        item = canvas[b:b + 1]\n"
    "        for _ in range(CROPS):\n"
    "            s = min(1.0, side * uniform(rng, 0.8, 1.0))\n"
    "            h = max(2, min(Hc, math.floor(s * Hc + 0.5)))  # llround\n"
    "            w = max(2, min(Wc, math.floor(s * Wc + 0.5)))\n"
    "            y0 = rng() % (Hc - h + 1)\n"
    "            x0 = rng() % (Wc - w + 1)\n"
    "            v = item[:, :, y0:y0 + h, x0:x0 + w]\n"
    "            if h != HIN or w != WIN:\n"
    "                v = F.interpolate(v, size=(HIN, WIN), mode=\"bilinear\", align_corners=False)\n"
    "            views.append(v)\n"
    "    x = torch.cat(views)\n"
    "    if NOISE > 0:\n"
    "        flat = torch.rand_like(x) - 0.5  # the engine's order: uniform, then Gaussian\n"
    "        x = x + NOISE * (torch.randn_like(x) + flat)\n"
    "    return x\n"
    "\n"
    "\n"
    "def jitter_crop(x, d, rng):\n"
    "    if d <= 1:\n"
    "        return x\n"
    "    dx, dy = rng() % d, rng() % d\n"
    "    h, w = x.shape[2] - d, x.shape[3] - d\n"
    "    if h < 1 or w < 1:\n"
    "        return x\n"
    "    return x[:, :, dy:dy + h, dx:dx + w]\n"
    "\n"
    "\n"
    "def transform(x, rng):\n"
    "    \"\"\"Lucid's standard transforms: pad, jitter, random scale, random\n"
    "    rotation, jitter by half; then back to H x W.\"\"\"\n"
    "    if TRANSFORMS:\n"
    "        if PAD > 0:\n"
    "            x = F.pad(x, (PAD, PAD, PAD, PAD), value=0.5)\n"
    "        x = jitter_crop(x, JITTER, rng)\n"
    "        s = SCALES[rng() % len(SCALES)]\n"
    "        if s != 1.0:\n"
    "            size = (math.ceil(s * x.shape[2]), math.ceil(s * x.shape[3]))\n"
    "            x = F.interpolate(x, size=size, mode=\"bilinear\", align_corners=True)\n"
    "        if ANGLES:\n"
    "            a = ANGLES[rng() % len(ANGLES)]\n"
    "            if a != 0:\n"
    "                r = a * math.pi / 180.0\n"
    "                theta = torch.tensor([[math.cos(r), -math.sin(r), 0.0],\n"
    "                                      [math.sin(r), math.cos(r), 0.0]], dtype=x.dtype)\n"
    "                grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape),\n"
    "                                     align_corners=False)\n"
    "                x = F.grid_sample(x, grid, mode=\"bilinear\", padding_mode=\"zeros\",\n"
    "                                  align_corners=False)\n"
    "        x = jitter_crop(x, JITTER // 2, rng)\n"
    "    if x.shape[2] != H or x.shape[3] != W:\n"
    "        x = F.interpolate(x, size=(H, W), mode=\"bilinear\", align_corners=False)\n"
    "    return x\n"
    "\n"
    "\n"
    "def penalties(display):\n"
    "    \"\"\"The regularizers, each times its weight, on the display image.\"\"\"\n"
    "    d = display - 0.5\n"
    "    out = []\n"
    "    for name, w in REGULARIZERS:\n"
    "        if name == \"l1\":\n"
    "            pen = d.abs().mean()\n"
    "        elif name == \"l2\":\n"
    "            pen = (d * d).mean()\n"
    "        elif name == \"tv\":\n"
    "            pen = ((display[:, :, 1:] - display[:, :, :-1]).abs().mean()\n"
    "                   + (display[:, :, :, 1:] - display[:, :, :, :-1]).abs().mean())\n"
    "        else:  # blur\n"
    "            pen = (display - F.avg_pool2d(display, 3, 1, 1, count_include_pad=False)).pow(2).mean()\n"
    "        out.append(pen * w)\n"
    "    return out\n"
    "\n"
    "\n"
    "def objectives(A, k):\n"
    "    \"\"\"The objective of each image, (B), from the activations A of its k views\n"
    "    (rows b * k ... b * k + k - 1): the mean over its views.\"\"\"\n"
    "    rows = A[LAYERS[0]].shape[0]\n"
    "    per = torch.stack([torch.as_tensor(objective(A, r, r // k), dtype=torch.float32)\n"
    "                       for r in range(rows)])\n"
    "    return per.reshape(B, k).mean(1) if k > 1 else per\n"
    "\n"
    "\n"
    "class NAdam:\n"
    "    \"\"\"torch.optim.NAdam with its defaults (betas 0.9, 0.999, eps 1e-8,\n"
    "    momentum_decay 4e-3) as PyTorch 2 computes it, on one tensor, as the\n"
    "    engine runs it (PyTorch 1.13's counted mu_t twice in its second step).\"\"\"\n"
    "\n"
    "    def __init__(self, p, lr):\n"
    "        self.p, self.lr, self.t, self.mu_product = p, lr, 0, 1.0\n"
    "        self.m, self.v = torch.zeros_like(p), torch.zeros_like(p)\n"
    "\n"
    "    def zero_grad(self):\n"
    "        if self.p.grad is not None:\n"
    "            self.p.grad.zero_()\n"
    "\n"
    "    @torch.no_grad()\n"
    "    def step(self):\n"
    "        g = self.p.grad\n"
    "        self.t += 1\n"
    "        bias2 = 1.0 - 0.999 ** self.t\n"
    "        mu = 0.9 * (1.0 - 0.5 * 0.96 ** (self.t * 4e-3))\n"
    "        mu_next = 0.9 * (1.0 - 0.5 * 0.96 ** ((self.t + 1) * 4e-3))\n"
    "        self.mu_product *= mu\n"
    "        self.m.lerp_(g, 1.0 - 0.9)\n"
    "        self.v.mul_(0.999).addcmul_(g, g, value=1.0 - 0.999)\n"
    "        denom = (self.v / bias2).sqrt_().add_(1e-8)\n"
    "        self.p.addcdiv_(g, denom, value=-self.lr * (1.0 - mu) / (1.0 - self.mu_product))\n"
    "        self.p.addcdiv_(self.m, denom, value=-self.lr * mu_next / (1.0 - self.mu_product * mu_next))\n"
    "\n"
    "\n"
    "def diversity_term(A):\n"
    "    \"\"\"The diversity option's term at DIVERSITY_LAYER: an image's views side\n"
    "    by side stand for it.\"\"\"\n"
    "    act = A[DIVERSITY_LAYER]\n"
    "    if K > 1 and act.dim() >= 2:\n"
    "        act = act.reshape(B, K, act.shape[1], -1).permute(0, 2, 1, 3).reshape(B, act.shape[1], -1)\n"
    "    return diversity(act) * DIVERSITY\n"
    "\n"
    "\n"
    "# ---------------------------------------------------------------- the run\n"
    "torch.manual_seed(SEED)\n"
    "rng = MT19937_64(SEED)\n"
    "if PARAM == \"fft\":\n"
    "    p = torch.randn(B, C, H, W // 2 + 1, 2) * INIT_STD\n"
    "elif PARAM == \"maco\":\n"
    "    p = torch.randn(B, C, H, W // 2 + 1)\n"
    "else:\n"
    "    p = torch.randn(B, C, H, W) * INIT_STD\n"
    "if INIT_IMAGE is not None:\n"
    "    p = invert(INIT_IMAGE.clamp(0, 1)).contiguous()\n"
    "p.requires_grad_(True)\n"
    "if OPTIMIZER == \"adam\":\n"
    "    opt = torch.optim.Adam([p], lr=LR)\n"
    "elif OPTIMIZER == \"nadam\":\n"
    "    opt = NAdam(p, LR)\n"
    "else:\n"
    "    opt = torch.optim.SGD([p], lr=LR, momentum=MOMENTUM)\n"
    "K = CROPS if PARAM == \"maco\" else 1  # views of each image per step\n"
    "\n"
    "curve = []\n"
    "for step in range(1, STEPS + 1):\n"
    "    opt.zero_grad()\n"
    "    display = render(p)\n"
    "    x = maco_views(display, crop_side(step), rng) if PARAM == \"maco\" else transform(display, rng)\n"
    "    A = read_layers(model, to_model(x), LAYERS)\n"
    "    per = objectives(A, K)\n"
    "    loss = -per.sum()\n"
    "    if DIVERSITY > 0:\n"
    "        loss = loss - diversity_term(A)\n"
    "    if ACCENT > 0:  # feature accentuation: stay close to the start image\n"
    "        loss = loss + (display - INIT_IMAGE.clamp(0, 1)).pow(2).mean() * ACCENT\n"
    "    for pen in penalties(display):\n"
    "        loss = loss + pen\n"
    "    loss.backward()\n"
    "    opt.step()\n"
    "    curve.append(per.sum().item())\n"
    "\n"
    "with torch.no_grad():\n"
    "    image = render(p)  # (B, C, H, W) in [0, 1]\n"
    "    x = image\n"
    "    if PARAM == \"maco\" and (H, W) != (HIN, WIN):\n"
    "        x = F.interpolate(x, size=(HIN, WIN), mode=\"bilinear\", align_corners=False)\n"
    "    final = objectives(read_layers(model, to_model(x), LAYERS), 1)  # the clean image, no transforms\n"
    "print(\"objective at the last step:\", curve[-1])\n"
    "print(\"final activation:\", \" \".join(repr(v) for v in final.tolist()))\n";

/* The constants block: every option of the run, resolved as run.cpp does. */
static int add_constants(sbuf *s, am_model *m, const am_options *o, int64_t B, int64_t C, int64_t H, int64_t W,
                         char *err, size_t n) {
    char b1[32], b2[32];
    const int maco = o->param == AM_PARAM_MACO;
    /* run.cpp: AM_OPT_AUTO is NAdam for MACO, Adam otherwise; lr 0 the parameterization's default. */
    int optimizer = o->optimizer != AM_OPT_AUTO ? o->optimizer : maco ? AM_OPT_NADAM : AM_OPT_ADAM;
    addf(s, "\n\n# The engine holds its options as float32: f32(x) is that value.\n");
    addf(s, "def f32(x):\n    return float(torch.tensor(x, dtype=torch.float32))\n\n\n");
    addf(s, "SEED = %llu\n", (unsigned long long)o->seed);
    addf(s, "STEPS = %d\n", o->steps);
    addf(s, "LR = f32(%s)\n", f32_text(o->lr > 0 ? o->lr : maco ? 1.0f : 0.05f, b1));
    addf(s, "OPTIMIZER = \"%s\"\n", optimizer == AM_OPT_SGD ? "sgd" : optimizer == AM_OPT_NADAM ? "nadam" : "adam");
    addf(s, "MOMENTUM = f32(%s)\n", f32_text(o->momentum, b1));
    addf(s, "B, C, H, W = %lld, %lld, %lld, %lld  # images, channels, height, width\n", (long long)B, (long long)C,
         (long long)H, (long long)W);
    addf(s, "PARAM = \"%s\"\n", maco ? "maco" : o->param == AM_PARAM_PIXEL ? "pixel" : "fft");
    addf(s, "DECORRELATE = %s\n", o->decorrelate && C == 3 ? "True" : "False");
    addf(s, "DECAY_POWER = f32(%s)\n", f32_text(o->decay_power, b1));
    addf(s, "INIT_STD = f32(%s)\n", f32_text(o->init_std, b1));
    double s224 = (double)(H < W ? H : W) / 224.0;
    int pad = o->pad >= 0 ? o->pad : (int)lround(fmax(1.0, 12.0 * s224));
    int jitter = o->jitter >= 0 ? o->jitter : (int)lround(fmax(2.0, 8.0 * s224));
    int64_t in[AM_MAX_DIMS];
    am_model_input_shape(m, in, AM_MAX_DIMS);
    addf(s, "HIN, WIN = %lld, %lld  # the model's input size\n", (long long)in[1], (long long)in[2]);
    addf(s, "# MACO (PARAM \"maco\"): crops per image, their side over the run, noise, contrast\n");
    addf(s, "CROPS = %d\n", maco ? o->crops : 1);
    addf(s, "CROP_MAX, CROP_MIN = f32(%s), f32(%s)\n", f32_text(o->crop_max, b1), f32_text(o->crop_min, b2));
    addf(s, "NOISE = f32(%s)\n", f32_text(o->noise, b1));
    addf(s, "CONTRAST = f32(%s)\n", f32_text(o->contrast, b1));
    if (maco) {
        /* The fixed magnitude is the engine's (a dataset's mean spectrum takes a pass over it). */
        size_t count = (size_t)(C * H * (W / 2 + 1));
        float *mag = malloc(count * sizeof *mag);
        char note[256];
        if (!mag) return fail(err, n, AM_E_NOMEM, "out of memory");
        int rc = am_param_magnitude(m, o, C, H, W, mag, note, sizeof note);
        if (rc != AM_OK) {
            free(mag);
            return fail(err, n, rc, "%s", note);
        }
        addf(s, "# %s (float32 bytes; the engine computes it once)\n", note);
        addf(s, "MAG = torch.frombuffer(bytearray(base64.b64decode(");
        add_b64_floats(s, mag, count);
        addf(s, ")), dtype=torch.float32).reshape(1, C, H, W // 2 + 1)\n");
        free(mag);
    } else {
        addf(s, "MAG = None\n");
    }
    addf(s, "ACCENT = f32(%s)  # weight of mean((image - start image)^2)\n", f32_text(o->accent, b1));
    addf(s, "DIVERSITY = f32(%s)  # weight of the diversity term at DIVERSITY_LAYER\n", f32_text(o->diversity, b1));
    addf(s, "TRANSFORMS = %s\n", o->transforms ? "True" : "False");
    addf(s, "PAD, JITTER = %d, %d  # pixels (-1 in the options: 12 and 8 at 224 px, scaled)\n", pad, jitter);
    addf(s, "SCALE_MIN, SCALE_MAX = f32(%s), f32(%s)\n", f32_text(o->scale_min, b1), f32_text(o->scale_max, b2));
    /* run.cpp's scale_min + (scale_max - scale_min) * i / 10.0: float32 up to the division. */
    addf(s, "SCALES = [SCALE_MIN + f32(f32(SCALE_MAX - SCALE_MIN) * i) / 10.0 for i in range(11)]\n");
    int rot = (int)lround(o->rotate_deg);
    addf(s, "ANGLES = [");
    if (rot > 0) {
        /* Lucent's list: every integer angle once, and zero five more times. */
        for (int a = -rot; a <= rot; a++) addf(s, "%d, ", a);
        addf(s, "0, 0, 0, 0, 0");
    }
    addf(s, "]\n");
    const float *mean = NULL, *sd = NULL;
    int count = 0;
    float range[2] = {0, 1};
    am_model_normalization(m, &mean, &sd, &count, range);
    addf(s, "MEAN = [");
    for (int i = 0; i < count; i++) addf(s, "%s%.9g", i ? ", " : "", (double)mean[i]);
    addf(s, "]\nSTD = [");
    for (int i = 0; i < count; i++) addf(s, "%s%.9g", i ? ", " : "", (double)sd[i]);
    addf(s, "]\nRANGE = (%.9g, %.9g)\n", (double)range[0], (double)range[1]);
    addf(s, "REGULARIZERS = [");
    const char *names[] = {"l1", "l2", "tv", "blur"};
    float w[] = {o->l1, o->l2, o->tv, o->blur};
    for (int i = 0, k = 0; i < 4; i++)
        if (w[i] > 0) addf(s, "%s(\"%s\", f32(%s))", k++ ? ", " : "", names[i], f32_text(w[i], b1));
    addf(s, "]  # (name, weight), subtracted from the objective\n");
    if (o->init == AM_INIT_IMAGE && o->init_image) {
        int64_t nel = B * C * H * W;
        addf(s, "INIT_IMAGE = torch.tensor([");
        for (int64_t i = 0; i < nel; i++)
            addf(s, "%s%.9g", i ? (i % 8 ? ", " : ",\n    ") : "", (double)o->init_image[i]);
        addf(s, "]).reshape(B, C, H, W)  # the start image, display space\n");
    } else {
        addf(s, "INIT_IMAGE = None  # start from noise\n");
    }
    return AM_OK;
}

static int check(am_model *m, const am_options *o, const char *model_path, char *err, size_t n) {
    if (!m || !o || !model_path)
        return fail(err, n, AM_E_ARG, "am_run_code needs a model, options and the model's path");
    if (strcmp(am_model_kind(m), "image") != 0)
        return fail(err, n, AM_E_UNSUPPORTED, "the script is written for image runs");
    if (!o->objectives || o->n_objectives < 1) return fail(err, n, AM_E_ARG, "no objective given");
    for (int i = 0; i < o->n_objectives; i++)
        if (!o->objectives[i]) return fail(err, n, AM_E_ARG, "objective %d is NULL", i);
    if (o->init == AM_INIT_IMAGE && !o->init_image)
        return fail(err, n, AM_E_ARG, "init is AM_INIT_IMAGE but init_image is NULL");
    if (o->accent > 0 && o->init != AM_INIT_IMAGE)
        return fail(err, n, AM_E_ARG, "accent keeps the image close to a start image: it needs init_image");
    int64_t B = o->n_objectives > 1 ? o->n_objectives : o->batch;
    if (o->diversity > 0 && B < 2)
        return fail(err, n, AM_E_ARG, "diversity compares the images of a batch with each other: it needs batch >= 2");
    if (o->param == AM_PARAM_MACO && (o->crops < 1 || o->crops > 256))
        return fail(err, n, AM_E_ARG, "crops must be 1..256, got %d", o->crops);
    return AM_OK;
}

int am_run_code(am_model *m, const am_options *o, const char *model_path, const char *model_code, char **code,
                char *err, size_t n) {
    if (err && n) err[0] = '\0';
    if (!code) return fail(err, n, AM_E_ARG, "am_run_code needs somewhere to put the code");
    *code = NULL;
    int rc = check(m, o, model_path, err, n);
    if (rc != AM_OK) return rc;
    int64_t in[AM_MAX_DIMS];
    if (am_model_input_shape(m, in, AM_MAX_DIMS) != 3)
        return fail(err, n, AM_E_UNSUPPORTED, "the model's input is not C x H x W");
    int64_t B = o->n_objectives > 1 ? o->n_objectives : o->batch;
    int64_t C = in[0], H = o->height ? o->height : in[1], W = o->width ? o->width : in[2];

    sbuf obj = {0}, layers = {0}, s = {0};
    addf(&obj, "def objective(A, b, i):\n");
    addf(&obj,
         "    \"\"\"Row b's value of objective i from the activations A (layer -> batch-first\n"
         "    tensor); a batch of B images has one objective, or one per image.\"\"\"\n");
    for (int i = 0; i < o->n_objectives && rc == AM_OK; i++) {
        if (o->n_objectives > 1) addf(&obj, "    if i == %d:\n    ", i);
        addf(&obj, "    return ");
        rc = objective_py(m, o->objectives[i], &obj, &layers, err, n);
        addf(&obj, "  # %s\n", o->objectives[i]);
    }
    if (rc == AM_OK) {
        addf(&s, "#!/usr/bin/env python3\n\"\"\"");
        for (int i = 0; i < o->n_objectives; i++) addf(&s, "%s%s", i ? ", " : "", o->objectives[i]);
        addf(&s,
             ": an actmax image run as a PyTorch script.\n\n"
             "The engine's parameterization, transforms (with its random numbers),\n"
             "regularizers, optimizer and seed; prints the final activation of each\n"
             "image on the clean image, as the engine reports it.\n\"\"\"\n"
             "%simport math\n\nimport torch\nimport torch.nn.functional as F\n\n",
             o->param == AM_PARAM_MACO ? "import base64\n" : "");
        addf(&s, "MODEL = ");
        add_pystr(&s, model_path);
        addf(&s, "\n");
        rc = add_constants(&s, m, o, B, C, H, W, err, n);
    }
    if (rc == AM_OK) {
        if (o->diversity > 0) {
            /* run.cpp: the named layer, else the first one objectives[0] reads. */
            const char *dl = o->diversity_layer && o->diversity_layer[0] ? o->diversity_layer : NULL;
            char first[512] = "";
            if (!dl && layers.p) {
                const char *q = strchr(layers.p, '"'), *e = q ? strchr(q + 1, '"') : NULL;
                if (q && e) snprintf(first, sizeof first, "%.*s", (int)(e - q - 1), q + 1);
                dl = first;
            }
            if (!dl || !dl[0]) rc = fail(err, n, AM_E_ARG, "the objective reads no layer: name the diversity layer");
            if (rc == AM_OK) {
                add_layer(&layers, dl, (int)strlen(dl));
                addf(&s, "DIVERSITY_LAYER = ");
                add_pystr(&s, dl);
                addf(&s, "\n");
            }
        } else {
            addf(&s, "DIVERSITY_LAYER = None\n");
        }
    }
    if (rc == AM_OK) {
        addf(&s, "LAYERS = [%s]  # the modules the objective reads\n\n", layers.p ? layers.p : "");
        addf(&s, "# ---------------------------------------------------------------- the model\n");
        if (model_code && model_code[0])
            addf(&s, "%s%s", model_code, model_code[strlen(model_code) - 1] == '\n' ? "" : "\n");
        else
            addf(&s, "model = torch.jit.load(MODEL, map_location=\"cpu\")\n");
        addf(&s, "model.eval()\nfor q in model.parameters():\n    q.requires_grad_(False)\n\n\n");
        addf(&s, "%s\n", obj.p);
        addf(&s, "%s", k_helpers);
        if (!s.p) rc = fail(err, n, AM_E_NOMEM, "out of memory");
    }
    free(obj.p);
    free(layers.p);
    if (rc != AM_OK) {
        free(s.p);
        return rc;
    }
    *code = s.p;
    return AM_OK;
}
