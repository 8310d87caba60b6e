/*
 * lyra3d: forward-only CPU renderer of 3D Gaussians (the "cpu" backend of lyra3d.render.rasterize).
 *
 * Built on first use by lyra3d/_ckernel.py with the machine's C compiler
 * (cc -O3 -std=c99 -fno-math-errno -fPIC -shared [-fopenmp] rasterize.c -lm) and called through ctypes.
 *
 * It does, for one camera, what lyra3d.render's PyTorch reference does (_project + _composite_torch), with
 * gsplat's classic 3DGS rules:
 *
 *   1. project every Gaussian (OpenMP over Gaussians): camera-space mean; cull z outside [near, far] and
 *      opacity < 1/255; EWA 2D covariance J W R S S^T R^T W^T J^T with the Jacobian's x/z, y/z clamped to
 *      the field of view + 30 %, plus eps2d on the diagonal; cull a non-positive determinant; the pixel box
 *      mean +- extend * sqrt(diag cov), extend = min(3.33, sqrt(2 ln(255 opacity))), clipped to the image
 *      (cull if empty); colour from SH (degree <= 3) along mean - camera centre, + 0.5, clamped at 0;
 *   2. sort the visible Gaussians by camera z (stable LSD radix sort on the float bits, so ties keep the
 *      input order, as a stable argsort does);
 *   3. bin them into 16x16-pixel tiles (every tile their box touches), keeping the depth order;
 *   4. per tile (OpenMP over tiles), walk its Gaussians front to back; for each pixel of the tile inside
 *      the Gaussian's ellipse of alpha >= 1/255:
 *          alpha = min(0.999, opacity * exp(-0.5 d^T cov^-1 d))   (d = mean2d - pixel centre (+0.5))
 *          skip alpha < 1/255;  next_T = T (1 - alpha);  stop the pixel when next_T <= 1e-4
 *          (exclusive: that Gaussian is not added);  C += alpha T c;  D += alpha T z;  T = next_T
 *      and stop the tile when all its pixels are done;
 *   5. write rgb (3, H, W) planar, alpha = 1 - T and the expected depth D / max(alpha, 1e-10).
 *
 * The background blend is left to the caller.
 */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define TILE 16
#define ALPHA_MIN (1.0f / 255.0f)
#define ALPHA_MAX 0.999f
#define T_MIN 1e-4f
#define BOX_EXTEND_MAX 3.33f
/* Boxes and per-row ellipse bounds are widened a little so that rounding never drops a pixel whose alpha
   is >= 1/255; the exact alpha test decides. */
#define BOX_SLACK 1e-3f
#define SIGMA_SLACK 1e-3f
#define PIXEL_SLACK 1e-2f

static const float SH_C0 = 0.28209479177387814f;
static const float SH_C1 = 0.4886025119029199f;
static const float SH_C2[5] = {1.0925484305920792f, -1.0925484305920792f, 0.31539156525252005f,
                               -1.0925484305920792f, 0.5462742152960396f};
static const float SH_C3[7] = {-0.5900435899266435f, 2.890611442640554f, -0.4570457994644658f,
                               0.3731763325901154f, -0.4570457994644658f, 1.445305721320277f,
                               -0.5900435899266435f};

int lyra3d_rasterize_abi(void) { return 2; }

/* One projected Gaussian; 64 bytes, so the compositing loop touches one cache line per Gaussian. */
typedef struct {
    float mx, my;     /* projected mean, pixels */
    float ca, cb, cc; /* conic: inverse 2D covariance (cb off-diagonal) */
    float op;         /* opacity */
    float smax;       /* log(255 op): sigma above this gives alpha < 1/255 */
    float z;          /* camera z */
    float rgb[3];
    int32_t x0, y0, x1, y1; /* inclusive pixel box inside the image */
    float pad;
} splat;

typedef struct {
    const float *means, *log_scales, *quats, *logits, *sh;
    int sh_k, sh_degree;
    float R[9], t[3], centre[3];
    float fx, fy, cx, cy;
    int width, height;
    float near_plane, far_plane, eps2d;
} scene;

static float clampf(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* floor(v) as an int, for |v| < 2^31 after clamping to +-1e9 (no libm call, unlike floorf on plain SSE2) */
static inline int floor_int(float v) {
    v = clampf(v, -1e9f, 1e9f);
    const int i = (int)v;
    return i - ((float)i > v);
}

/* e^x for x <= 0 to about 2 ulp: Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, and a degree-7 Taylor
   polynomial for e^r. Plain arithmetic, so the compiler can vectorise the loop that calls it. */
static inline float exp_nonpositive(float x) {
    x = x > 0.0f ? 0.0f : x;
    x = x < -87.0f ? -87.0f : x;
    const int n = (int)(x * 1.4426950408889634f - 0.5f); /* round to nearest for x <= 0 */
    const float fn = (float)n;
    const float r = (x - fn * 0.693145751953125f) - fn * 1.4286067653302188e-06f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const int32_t bits = (n + 127) << 23; /* 2^n, n >= -126 */
    float scale;
    memcpy(&scale, &bits, sizeof(scale));
    return p * scale;
}

/* Project Gaussian i into the camera; return 1 and fill *s if it is visible. */
static int project_one(const scene *sc, int64_t i, splat *s) {
    const float *m = sc->means + 3 * i;
    const float *R = sc->R;
    const float x = R[0] * m[0] + R[1] * m[1] + R[2] * m[2] + sc->t[0];
    const float y = R[3] * m[0] + R[4] * m[1] + R[5] * m[2] + sc->t[1];
    const float z = R[6] * m[0] + R[7] * m[1] + R[8] * m[2] + sc->t[2];
    if (!(z >= sc->near_plane && z <= sc->far_plane)) return 0;
    const float op = 1.0f / (1.0f + expf(-sc->logits[i]));
    if (!(op >= ALPHA_MIN)) return 0;

    /* rotation of the normalised quaternion (wxyz) times the scales: M = Rq S */
    const float *q = sc->quats + 4 * i;
    float qn = sqrtf(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
    qn = qn > 1e-12f ? qn : 1e-12f;
    const float qw = q[0] / qn, qx = q[1] / qn, qy = q[2] / qn, qz = q[3] / qn;
    const float *ls = sc->log_scales + 3 * i;
    const float s0 = expf(ls[0]), s1 = expf(ls[1]), s2 = expf(ls[2]);
    const float M[9] = {(1 - 2 * (qy * qy + qz * qz)) * s0, 2 * (qx * qy - qw * qz) * s1, 2 * (qx * qz + qw * qy) * s2,
                        2 * (qx * qy + qw * qz) * s0, (1 - 2 * (qx * qx + qz * qz)) * s1, 2 * (qy * qz - qw * qx) * s2,
                        2 * (qx * qz - qw * qy) * s0, 2 * (qy * qz + qw * qx) * s1, (1 - 2 * (qx * qx + qy * qy)) * s2};
    float A[9]; /* W M: the Gaussian's axes in camera space */
    for (int r = 0; r < 3; ++r)
        for (int c = 0; c < 3; ++c) A[3 * r + c] = R[3 * r] * M[c] + R[3 * r + 1] * M[3 + c] + R[3 * r + 2] * M[6 + c];

    /* Jacobian of the projection, x/z and y/z clamped to the field of view + 30 % */
    const float fx = sc->fx, fy = sc->fy, cx = sc->cx, cy = sc->cy;
    const float w = (float)sc->width, h = (float)sc->height;
    const float tan_fovx = 0.5f * w / fx, tan_fovy = 0.5f * h / fy;
    const float rz = 1.0f / z;
    const float tx = z * clampf(x * rz, -(cx / fx + 0.3f * tan_fovx), (w - cx) / fx + 0.3f * tan_fovx);
    const float ty = z * clampf(y * rz, -(cy / fy + 0.3f * tan_fovy), (h - cy) / fy + 0.3f * tan_fovy);
    const float j00 = fx * rz, j02 = -fx * tx * rz * rz, j11 = fy * rz, j12 = -fy * ty * rz * rz;
    float h0[3], h1[3];
    for (int c = 0; c < 3; ++c) {
        h0[c] = j00 * A[c] + j02 * A[6 + c];
        h1[c] = j11 * A[3 + c] + j12 * A[6 + c];
    }
    const float a = h0[0] * h0[0] + h0[1] * h0[1] + h0[2] * h0[2] + sc->eps2d;
    const float b = h0[0] * h1[0] + h0[1] * h1[1] + h0[2] * h1[2];
    const float c = h1[0] * h1[0] + h1[1] * h1[1] + h1[2] * h1[2] + sc->eps2d;
    const float det = a * c - b * b;
    if (!(det > 0.0f)) return 0;
    const float mx = fx * x * rz + cx, my = fy * y * rz + cy;
    if (!isfinite(mx) || !isfinite(my)) return 0;

    float lg = logf(op * 255.0f);
    lg = lg > 0.0f ? lg : 0.0f;
    float extend = sqrtf(2.0f * lg);
    extend = extend < BOX_EXTEND_MAX ? extend : BOX_EXTEND_MAX;
    const float ex = extend * sqrtf(a) + BOX_SLACK, ey = extend * sqrtf(c) + BOX_SLACK;
    const float x0 = clampf(ceilf(mx - ex - 0.5f), 0.0f, w), x1 = clampf(floorf(mx + ex - 0.5f), -1.0f, w - 1);
    const float y0 = clampf(ceilf(my - ey - 0.5f), 0.0f, h), y1 = clampf(floorf(my + ey - 0.5f), -1.0f, h - 1);
    if (x0 > x1 || y0 > y1) return 0;

    s->mx = mx;
    s->my = my;
    s->ca = c / det;
    s->cb = -b / det;
    s->cc = a / det;
    s->op = op;
    s->smax = logf(255.0f * op);
    s->z = z;
    s->x0 = (int32_t)x0;
    s->y0 = (int32_t)y0;
    s->x1 = (int32_t)x1;
    s->y1 = (int32_t)y1;
    s->pad = 0.0f;

    /* colour: SH along the unit direction from the camera centre */
    float dx = m[0] - sc->centre[0], dy = m[1] - sc->centre[1], dz = m[2] - sc->centre[2];
    float dn = sqrtf(dx * dx + dy * dy + dz * dz);
    dn = dn > 1e-12f ? dn : 1e-12f;
    dx /= dn;
    dy /= dn;
    dz /= dn;
    float basis[16];
    int nb = 1;
    basis[0] = SH_C0;
    if (sc->sh_degree >= 1) {
        basis[1] = -SH_C1 * dy;
        basis[2] = SH_C1 * dz;
        basis[3] = -SH_C1 * dx;
        nb = 4;
    }
    if (sc->sh_degree >= 2) {
        const float xx = dx * dx, yy = dy * dy, zz = dz * dz;
        basis[4] = SH_C2[0] * dx * dy;
        basis[5] = SH_C2[1] * dy * dz;
        basis[6] = SH_C2[2] * (2 * zz - xx - yy);
        basis[7] = SH_C2[3] * dx * dz;
        basis[8] = SH_C2[4] * (xx - yy);
        nb = 9;
        if (sc->sh_degree >= 3) {
            basis[9] = SH_C3[0] * dy * (3 * xx - yy);
            basis[10] = SH_C3[1] * dx * dy * dz;
            basis[11] = SH_C3[2] * dy * (4 * zz - xx - yy);
            basis[12] = SH_C3[3] * dz * (2 * zz - 3 * xx - 3 * yy);
            basis[13] = SH_C3[4] * dx * (4 * zz - xx - yy);
            basis[14] = SH_C3[5] * dz * (xx - yy);
            basis[15] = SH_C3[6] * dx * (xx - 3 * yy);
            nb = 16;
        }
    }
    const float *coef = sc->sh + (int64_t)3 * sc->sh_k * i;
    for (int ch = 0; ch < 3; ++ch) {
        float v = 0.0f;
        for (int k = 0; k < nb; ++k) v += basis[k] * coef[3 * k + ch];
        v += 0.5f;
        s->rgb[ch] = v > 0.0f ? v : 0.0f;
    }
    return 1;
}

/* Stable LSD radix sort of (key, value) pairs by key; tmp buffers of the same length. */
static void radix_sort(uint32_t *keys, int32_t *vals, uint32_t *keys_tmp, int32_t *vals_tmp, int64_t m) {
    uint32_t *k_in = keys, *k_out = keys_tmp;
    int32_t *v_in = vals, *v_out = vals_tmp;
    for (int shift = 0; shift < 32; shift += 8) {
        int64_t count[257];
        memset(count, 0, sizeof(count));
        for (int64_t i = 0; i < m; ++i) ++count[((k_in[i] >> shift) & 255u) + 1];
        int trivial = 0;
        for (int d = 1; d <= 256; ++d) trivial |= count[d] == m;
        if (trivial) continue; /* every key has the same digit here */
        for (int d = 0; d < 256; ++d) count[d + 1] += count[d];
        for (int64_t i = 0; i < m; ++i) {
            const int64_t o = count[(k_in[i] >> shift) & 255u]++;
            k_out[o] = k_in[i];
            v_out[o] = v_in[i];
        }
        uint32_t *kt = k_in;
        k_in = k_out;
        k_out = kt;
        int32_t *vt = v_in;
        v_in = v_out;
        v_out = vt;
    }
    if (k_in != keys) {
        memcpy(keys, k_in, sizeof(uint32_t) * (size_t)m);
        memcpy(vals, v_in, sizeof(int32_t) * (size_t)m);
    }
}

static void render_tile(const splat *splats, const int64_t *offsets, const int32_t *ids, int tile, int tiles_x,
                        int width, int height, float *out_rgb, float *out_depth, float *out_alpha) {
    const int tx = tile % tiles_x, ty = tile / tiles_x;
    const int px0 = tx * TILE, py0 = ty * TILE;
    const int px1 = (px0 + TILE < width ? px0 + TILE : width) - 1;
    const int py1 = (py0 + TILE < height ? py0 + TILE : height) - 1;
    const int npix = (px1 - px0 + 1) * (py1 - py0 + 1);

    float T[TILE * TILE], cr[TILE * TILE], cg[TILE * TILE], cb[TILE * TILE], cd[TILE * TILE];
    int32_t done[TILE * TILE];
    int row_done[TILE]; /* finished pixels per row of the tile */
    for (int i = 0; i < TILE * TILE; ++i) {
        T[i] = 1.0f;
        cr[i] = cg[i] = cb[i] = cd[i] = 0.0f;
        done[i] = 0;
    }
    for (int i = 0; i < TILE; ++i) row_done[i] = 0;
    const int tile_w = px1 - px0 + 1;
    int ndone = 0;

    for (int64_t k = offsets[tile]; k < offsets[tile + 1] && ndone < npix; ++k) {
        const splat *s = splats + ids[k];
        const int gx0 = s->x0 > px0 ? s->x0 : px0, gx1 = s->x1 < px1 ? s->x1 : px1;
        const int gy0 = s->y0 > py0 ? s->y0 : py0, gy1 = s->y1 < py1 ? s->y1 : py1;
        const float mx = s->mx, my = s->my, ca = s->ca, cbx = s->cb, cc = s->cc, op = s->op;
        const float r = s->rgb[0], g = s->rgb[1], b = s->rgb[2], z = s->z;
        const float smax2 = 2.0f * (s->smax + SIGMA_SLACK), inv_ca = 1.0f / ca;
        for (int py = gy0; py <= gy1; ++py) {
            if (row_done[py - py0] == tile_w) continue;
            const float dy = my - ((float)py + 0.5f);
            /* the row's pixels with sigma <= smax: ca dx^2 + 2 cb dy dx + cc dy^2 <= 2 smax,
               dx = mx - pixel centre */
            const float disc = cbx * cbx * dy * dy - ca * (cc * dy * dy - smax2);
            if (disc < 0.0f) continue;
            const float sq = sqrtf(disc);
            const float dx_lo = (-cbx * dy - sq) * inv_ca - PIXEL_SLACK;
            const float dx_hi = (-cbx * dy + sq) * inv_ca + PIXEL_SLACK;
            /* pixels px with dx_lo <= mx - (px + 0.5) <= dx_hi, inside the box */
            int xa = -floor_int(dx_hi - mx + 0.5f), xb = floor_int(mx - 0.5f - dx_lo);
            xa = xa > gx0 ? xa : gx0;
            xb = xb < gx1 ? xb : gx1;
            if (xa > xb) continue;
            const int n_px = xb - xa + 1;
            const int o = (py - py0) * TILE + (xa - px0);
            float *restrict t_row = T + o, *restrict r_row = cr + o, *restrict g_row = cg + o;
            float *restrict b_row = cb + o, *restrict d_row = cd + o;
            int32_t *restrict done_row = done + o;
            const float sy = 0.5f * cc * dy * dy, dx0 = mx - ((float)xa + 0.5f);
            int finished = 0;
            /* branch-free over the row's pixels (each has its own state), so it vectorises */
            for (int i = 0; i < n_px; ++i) {
                const float dx = dx0 - (float)i;
                const float sigma = 0.5f * ca * dx * dx + sy + cbx * dx * dy;
                float alpha = op * exp_nonpositive(-sigma);
                const int valid = (done_row[i] == 0) & (sigma >= 0.0f) & (alpha >= ALPHA_MIN);
                alpha = alpha > ALPHA_MAX ? ALPHA_MAX : alpha; /* (after the test: keeps the loop vectorisable) */
                const float t = t_row[i];
                const float next_t = t * (1.0f - alpha);
                const int fin = valid & (next_t <= T_MIN); /* this pixel is done; exclusive, as gsplat */
                const int add = valid & (next_t > T_MIN);
                const float wgt = add ? alpha * t : 0.0f;
                r_row[i] += wgt * r;
                g_row[i] += wgt * g;
                b_row[i] += wgt * b;
                d_row[i] += wgt * z;
                t_row[i] = add ? next_t : t;
                done_row[i] |= fin;
                finished += fin;
            }
            row_done[py - py0] += finished;
            ndone += finished;
        }
    }

    const int64_t hw = (int64_t)width * height;
    for (int py = py0; py <= py1; ++py) {
        for (int px = px0; px <= px1; ++px) {
            const int p = (py - py0) * TILE + (px - px0);
            const int64_t o = (int64_t)py * width + px;
            const float alpha = 1.0f - T[p];
            out_rgb[o] = cr[p];
            out_rgb[hw + o] = cg[p];
            out_rgb[2 * hw + o] = cb[p];
            out_alpha[o] = alpha;
            out_depth[o] = cd[p] / (alpha > 1e-10f ? alpha : 1e-10f);
        }
    }
}

/*
 * Render n Gaussians into one camera.
 *   means (n,3), log_scales (n,3), quats (n,4) wxyz, opacity_logits (n,), sh (n,sh_k,3): float32, contiguous;
 *   w2c: 16 floats, row-major world-to-camera (OpenCV); intrinsics: fx, fy, cx, cy;
 *   out_rgb (3,H,W), out_depth (H,W), out_alpha (H,W): float32.
 * Returns 0 on success, -1 if memory ran out, -2 on bad arguments.
 */
int lyra3d_render(int64_t n, const float *means, const float *log_scales, const float *quats,
                  const float *opacity_logits, const float *sh, int sh_k, int sh_degree, const float *w2c,
                  const float *intrinsics, int width, int height, float near_plane, float far_plane, float eps2d,
                  int n_threads, float *out_rgb, float *out_depth, float *out_alpha) {
    if (n < 0 || n > INT32_MAX || width <= 0 || height <= 0 || sh_degree < 0 || sh_degree > 3 ||
        sh_k < (sh_degree + 1) * (sh_degree + 1))
        return -2;
    if (n_threads < 1) n_threads = 1;
    (void)n_threads;

    scene sc;
    sc.means = means;
    sc.log_scales = log_scales;
    sc.quats = quats;
    sc.logits = opacity_logits;
    sc.sh = sh;
    sc.sh_k = sh_k;
    sc.sh_degree = sh_degree;
    for (int r = 0; r < 3; ++r) {
        for (int c = 0; c < 3; ++c) sc.R[3 * r + c] = w2c[4 * r + c];
        sc.t[r] = w2c[4 * r + 3];
    }
    for (int c = 0; c < 3; ++c) /* centre = -R^T t */
        sc.centre[c] = -(sc.R[c] * sc.t[0] + sc.R[3 + c] * sc.t[1] + sc.R[6 + c] * sc.t[2]);
    sc.fx = intrinsics[0];
    sc.fy = intrinsics[1];
    sc.cx = intrinsics[2];
    sc.cy = intrinsics[3];
    sc.width = width;
    sc.height = height;
    sc.near_plane = near_plane;
    sc.far_plane = far_plane;
    sc.eps2d = eps2d;

    const int tiles_x = (width + TILE - 1) / TILE, tiles_y = (height + TILE - 1) / TILE;
    const int n_tiles = tiles_x * tiles_y;
    const size_t nn = (size_t)(n > 0 ? n : 1);
    splat *projected = (splat *)malloc(sizeof(splat) * nn);
    unsigned char *visible = (unsigned char *)malloc(nn);
    uint32_t *keys = (uint32_t *)malloc(sizeof(uint32_t) * nn * 2);
    int32_t *order = (int32_t *)malloc(sizeof(int32_t) * nn * 2);
    splat *sorted = (splat *)malloc(sizeof(splat) * nn);
    int64_t *offsets = (int64_t *)calloc((size_t)n_tiles + 1, sizeof(int64_t));
    int64_t *cursor = (int64_t *)malloc(sizeof(int64_t) * (size_t)n_tiles);
    int32_t *ids = NULL;
    int status = -1;
    if (!projected || !visible || !keys || !order || !sorted || !offsets || !cursor) goto cleanup;

    /* 1. project */
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(n_threads)
#endif
    for (int64_t i = 0; i < n; ++i) visible[i] = (unsigned char)project_one(&sc, i, projected + i);

    /* 2. sort the visible ones by z (positive floats order like their bits) */
    int64_t m = 0;
    for (int64_t i = 0; i < n; ++i) {
        if (!visible[i]) continue;
        uint32_t bits;
        memcpy(&bits, &projected[i].z, sizeof(bits));
        keys[m] = bits;
        order[m] = (int32_t)i;
        ++m;
    }
    radix_sort(keys, order, keys + nn, order + nn, m);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(n_threads)
#endif
    for (int64_t j = 0; j < m; ++j) sorted[j] = projected[order[j]];

    /* 3. bin into tiles, front to back */
    for (int64_t j = 0; j < m; ++j) {
        const splat *s = sorted + j;
        for (int ty = s->y0 / TILE; ty <= s->y1 / TILE; ++ty)
            for (int tx = s->x0 / TILE; tx <= s->x1 / TILE; ++tx) ++offsets[ty * tiles_x + tx + 1];
    }
    for (int t = 0; t < n_tiles; ++t) offsets[t + 1] += offsets[t];
    ids = (int32_t *)malloc(sizeof(int32_t) * (size_t)(offsets[n_tiles] > 0 ? offsets[n_tiles] : 1));
    if (!ids) goto cleanup;
    memcpy(cursor, offsets, sizeof(int64_t) * (size_t)n_tiles);
    for (int64_t j = 0; j < m; ++j) {
        const splat *s = sorted + j;
        for (int ty = s->y0 / TILE; ty <= s->y1 / TILE; ++ty)
            for (int tx = s->x0 / TILE; tx <= s->x1 / TILE; ++tx) ids[cursor[ty * tiles_x + tx]++] = (int32_t)j;
    }

    /* 4.-5. composite */
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(n_threads)
#endif
    for (int t = 0; t < n_tiles; ++t)
        render_tile(sorted, offsets, ids, t, tiles_x, width, height, out_rgb, out_depth, out_alpha);
    status = 0;

cleanup:
    free(projected);
    free(visible);
    free(keys);
    free(order);
    free(sorted);
    free(offsets);
    free(cursor);
    free(ids);
    return status;
}
