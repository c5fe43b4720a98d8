/* Integer layers; each computes what quantize/int_runtime.py computes, bit for bit. */
#include "yint.h"

/* (a * m + b) / 2^n rounded to nearest, ties to even (quantize/fixed_point.py). The floor
 * division is written out: C99 leaves the right shift of a negative number to the compiler. */
static inline int64_t requantize(int64_t a, int64_t m, int n, int64_t b)
{
    int64_t p = a * m + b, one = 1, sign, q, r, half;
    if (n == 0)
        return p;
    /* floor(p / 2^n) without a branch on the sign (signs are random, branches mispredict):
     * -ceil(|p| / 2^n) for p < 0; sign is 0 or -1 (int64_t is two's complement) */
    sign = -(int64_t)(p < 0);
    q = (((p ^ sign) - sign) + (sign & ((one << n) - 1))) >> n;
    q = (q ^ sign) - sign;
    r = p - q * (one << n);
    half = one << (n - 1);
    return q + ((r > half) | ((r == half) & (int)(q & 1)));  /* no branch either */
}

int64_t yint_requantize(int64_t a, int64_t m, int n, int64_t b)
{
    return requantize(a, m, n, b);
}

static act_t saturate(int64_t v, int qmin, int qmax)
{
    return (act_t)(v < qmin ? qmin : v > qmax ? qmax : v);
}

void yint_input(const uint8_t *pixels, long count, int32_t m, int n, int zero, int qmin,
                int qmax, act_t *y)
{
    long i;
    for (i = 0; i < count; i++)
        y[i] = saturate(zero + yint_requantize(pixels[i], m, n, 0), qmin, qmax);
}

/* The geometry of one convolution's tiles (yint.h's YINT_* macros give the same numbers to the
 * arena planner in quantize/export_c.py): a tile is `rows` output rows; every prepared input row
 * and every accumulator row is `pitch` lanes apart, so that one kernel tap reads one contiguous
 * run of `lanes` values for the whole tile. */
typedef struct {
    int reach, pitch, rows, lanes, seg;
} tiles_t;

static tiles_t tiles_of(const yint_conv_t *p, int oh, int ow)
{
    tiles_t t;
    t.reach = YINT_REACH(p->size, p->stride, p->dilation);
    t.pitch = ow + t.reach;
    t.rows = YINT_TILE_ROWS(oh, ow, p->size, p->stride, p->dilation);
    t.lanes = YINT_ALIGN(t.rows * t.pitch);
    t.seg = YINT_SEG(oh, ow, p->size, p->stride, p->dilation);
    return t;
}

static int first_inside(int offset, int stride)  /* least j with j * stride + offset >= 0 */
{
    return offset >= 0 ? 0 : (-offset + stride - 1) / stride;
}

static int last_inside(int offset, int stride, int size)  /* least j: j*stride+offset >= size */
{
    return offset >= size ? 0 : (size - 1 - offset) / stride + 1;
}

/* o[j] = row[j * s + offset] - zero for j in [j0, j1) (the columns inside the image), 0
 * elsewhere in [0, pitch) */
static void prepare_row(const act_t *row, int offset, int s, int zero, int j0, int j1,
                        int pitch, tap_t *o)
{
    int j;
    for (j = 0; j < j0; j++)
        o[j] = 0;
    if (s == 1) {  /* the common case, contiguous: vectorised */
        const act_t *x = row + (j0 + offset);  /* a pixel of the row: j0 + offset >= 0 */
        for (j = 0; j < j1 - j0; j++)
            o[j0 + j] = (tap_t)(x[j] - zero);
    } else {
        for (j = j0; j < j1; j++)
            o[j] = (tap_t)(row[j * s + offset] - zero);
    }
    for (j = j1; j < pitch; j++)
        o[j] = 0;
}

/* x - zero over the input rows and columns that output rows oy0 .. oy0 + n - 1 read, split into
 * stride x stride phases (rows and columns) so that each tap reads one contiguous run: phase
 * (fy, fx) holds, at r * pitch + j, padded input row (oy0 + r) * s + fy and padded column
 * j * s + fx. Pixels outside the image hold 0, as the zero point pads. */
static void prepare(const yint_conv_t *p, const act_t *x, int h, int w, int oy0, int n,
                    const tiles_t *t, tap_t *buf)
{
    int s = p->stride, ic, fy, fx, r, j;
    for (ic = 0; ic < p->cin; ic++)
        for (fy = 0; fy < s; fy++)
            for (fx = 0; fx < s; fx++) {
                tap_t *out = buf + (((long)ic * s + fy) * s + fx) * t->seg;
                /* columns j0 .. j1 - 1 lie inside the image (ix = j * s + fx - pad) */
                int j0 = first_inside(fx - p->pad, s), j1 = last_inside(fx - p->pad, s, w);
                if (j0 > t->pitch) j0 = t->pitch;
                if (j1 > t->pitch) j1 = t->pitch;
                if (j1 < j0) j1 = j0;  /* no column inside (an image narrower than the pad) */
                for (r = 0; r < n + t->reach; r++) {
                    int iy = (oy0 + r) * s + fy - p->pad;
                    tap_t *o = out + (long)r * t->pitch;
                    if (iy < 0 || iy >= h) {
                        for (j = 0; j < t->pitch; j++)
                            o[j] = 0;
                        continue;
                    }
                    prepare_row(x + ((long)ic * h + iy) * w, fx - p->pad, s, p->in_zero, j0,
                                j1, t->pitch, o);
                }
            }
}

/* count outputs of channel c from their accumulators: requantized, activated, saturated */
static void activate_row(const yint_conv_t *p, int c, const acc_t *acc, int count, act_t *y)
{
    int64_t m = p->m[c], b = p->b[c], m_neg = p->m_neg[c], b_neg = p->b_neg[c], r;
    int n = p->n[c], n_neg = p->n_neg[c], kind = p->activation, zero = p->out_zero, i;
    int qmin = p->qmin, qmax = p->qmax;  /* locals: the stores to y cannot change them */
    /* one loop per activation, and selects rather than branches on the sign */
    if (kind == YINT_LEAKY)  /* where leaky's side rounds apart: both, then pick */
        for (i = 0; i < count; i++) {
            int64_t pos = requantize(acc[i], m, n, b), neg = requantize(acc[i], m_neg, n_neg,
                                                                        b_neg);
            r = pos < 0 ? neg : pos;
            y[i] = saturate(zero + r, qmin, qmax);
        }
    else
        for (i = 0; i < count; i++) {
            r = requantize(acc[i], m, n, b);
            r = (kind == YINT_RELU && r < 0) ? 0 : r;
            y[i] = saturate(zero + r, qmin, qmax);
        }
}

/* acc[j][0..n) += src[0..n) * wv[j] for the OCB output channels of a block, n a multiple of
 * YINT_BLOCK: each prepared input value is loaded once for OCB channels, and the fixed-length
 * inner loop is what compilers vectorise at -O2 (no remainder; restrict rows; narrow operands
 * and wide sums: widening multiplies). */
#define OCB 4
static void mac_rows(acc_t *restrict a0, acc_t *restrict a1, acc_t *restrict a2,
                     acc_t *restrict a3, const tap_t *src, const tap_t *wv, int n)
{
    tap_t w0 = wv[0], w1 = wv[1], w2 = wv[2], w3 = wv[3];
    int b, i;
    for (b = 0; b < n; b += YINT_BLOCK)
        for (i = 0; i < YINT_BLOCK; i++) {
            tap_t v = src[b + i];
            a0[b + i] += (acc_t)v * w0;
            a1[b + i] += (acc_t)v * w1;
            a2[b + i] += (acc_t)v * w2;
            a3[b + i] += (acc_t)v * w3;
        }
}

/* mac_rows for three taps at once (a kernel row of a 3x3 conv): three products per
 * accumulator load and store */
static void mac_rows3(acc_t *restrict a0, acc_t *restrict a1, acc_t *restrict a2,
                      acc_t *restrict a3, const tap_t *s0, const tap_t *s1, const tap_t *s2,
                      const tap_t *wv, int n)
{
    tap_t w00 = wv[0], w01 = wv[1], w02 = wv[2], w10 = wv[3], w11 = wv[4], w12 = wv[5];
    tap_t w20 = wv[6], w21 = wv[7], w22 = wv[8], w30 = wv[9], w31 = wv[10], w32 = wv[11];
    int b, i;
    for (b = 0; b < n; b += YINT_BLOCK)
        for (i = 0; i < YINT_BLOCK; i++) {
            tap_t v0 = s0[b + i], v1 = s1[b + i], v2 = s2[b + i];
            a0[b + i] += (acc_t)v0 * w00 + (acc_t)v1 * w01 + (acc_t)v2 * w02;
            a1[b + i] += (acc_t)v0 * w10 + (acc_t)v1 * w11 + (acc_t)v2 * w12;
            a2[b + i] += (acc_t)v0 * w20 + (acc_t)v1 * w21 + (acc_t)v2 * w22;
            a3[b + i] += (acc_t)v0 * w30 + (acc_t)v1 * w31 + (acc_t)v2 * w32;
        }
}

static void mac_row3(acc_t *acc, const tap_t *s0, const tap_t *s1, const tap_t *s2,
                     const tap_t *wv, int n)
{
    tap_t w0 = wv[0], w1 = wv[1], w2 = wv[2];
    int b, i;
    for (b = 0; b < n; b += YINT_BLOCK)
        for (i = 0; i < YINT_BLOCK; i++)
            acc[b + i] += (acc_t)s0[b + i] * w0 + (acc_t)s1[b + i] * w1 +
                          (acc_t)s2[b + i] * w2;
}

static void mac_row(acc_t *acc, const tap_t *src, tap_t wv, int n)
{
    int b, i;
    for (b = 0; b < n; b += YINT_BLOCK)
        for (i = 0; i < YINT_BLOCK; i++)
            acc[b + i] += (acc_t)src[b + i] * wv;
}

/* Where kernel tap (ky, kx) of input channel c reads the prepared tile: its phase's segment,
 * shifted by the rows and columns the tap reaches past the first. */
static const tap_t *tap_source(const yint_conv_t *p, const tiles_t *t, const tap_t *buf, int c,
                               int ky, int kx)
{
    int s = p->stride, dy = ky * p->dilation, dx = kx * p->dilation;
    return buf + (((long)c * s + dy % s) * s + dx % s) * t->seg + (long)(dy / s) * t->pitch +
           dx / s;
}

/* The accumulators of output channels oc .. oc + nb - 1 (one group; nb 1 or OCB) over a tile:
 * every tap adds one contiguous run of the prepared input. */
static void accumulate(const yint_conv_t *p, int oc, int nb, const tiles_t *t,
                       const tap_t *buf, int lanes, acc_t *acc)
{
    int k = p->size, cin_g = p->cin / p->groups, taps = cin_g * k * k;
    int g = oc / (p->cout / p->groups), ic, ky, kx, j, any;
    const wt_t *wc = p->weight + (long)oc * taps;
    tap_t wv[OCB];
    for (j = 0; j < nb * t->lanes; j++)
        acc[j] = 0;
    for (ic = 0; ic < cin_g; ic++)
        for (ky = 0; ky < k; ky++) {
            if (k == 3) {  /* the common 3x3 conv (depthwise too): a kernel row at a time */
                const tap_t *src[3];
                tap_t w3[3 * OCB];
                for (kx = 0; kx < 3; kx++) {
                    src[kx] = tap_source(p, t, buf, g * cin_g + ic, ky, kx);
                    for (j = 0; j < nb; j++)
                        w3[j * 3 + kx] = wc[(long)j * taps + (ic * k + ky) * k + kx];
                }
                if (nb == OCB)
                    mac_rows3(acc, acc + t->lanes, acc + 2 * t->lanes, acc + 3 * t->lanes,
                              src[0], src[1], src[2], w3, lanes);
                else
                    mac_row3(acc, src[0], src[1], src[2], w3, lanes);
                continue;
            }
            for (kx = 0; kx < k; kx++) {
                const wt_t *wt = wc + (ic * k + ky) * k + kx;  /* the weights' own order */
                const tap_t *src = tap_source(p, t, buf, g * cin_g + ic, ky, kx);
                for (j = any = 0; j < nb; j++)
                    any |= (wv[j] = wt[(long)j * taps]) != 0;
                if (!any)  /* pruned and 2:4 weights cost nothing */
                    continue;
                if (nb == OCB)
                    mac_rows(acc, acc + t->lanes, acc + 2 * t->lanes, acc + 3 * t->lanes, src,
                             wv, lanes);
                else
                    mac_row(acc, src, wv[0], lanes);
            }
        }
}

/* Tile by tile (a few output rows): the input the tile reads is prepared once (x - zero,
 * padded, phase-split), then blocks of OCB output channels accumulate every tap as one
 * contiguous run held in cache, and are requantized. */
void yint_conv(const yint_conv_t *p, const act_t *x, int h, int w, act_t *y, int oh, int ow,
               void *scratch)
{
    tiles_t t = tiles_of(p, oh, ow);
    int cout_g = p->cout / p->groups, oy0, n, oc, nb, j, r;
    acc_t *acc = (acc_t *)scratch;  /* OCB x lanes; lanes past ow in each row are never read */
    tap_t *buf = (tap_t *)(acc + OCB * t.lanes);
    long plane = (long)oh * ow;
    for (oy0 = 0; oy0 < oh; oy0 += n) {
        n = oh - oy0 < t.rows ? oh - oy0 : t.rows;
        prepare(p, x, h, w, oy0, n, &t, buf);
        for (oc = 0; oc < p->cout; oc += nb) {
            nb = (cout_g - oc % cout_g >= OCB) ? OCB : 1;  /* a block stays in one group */
            accumulate(p, oc, nb, &t, buf, YINT_ALIGN(n * t.pitch), acc);
            for (j = 0; j < nb; j++)
                for (r = 0; r < n; r++)
                    activate_row(p, oc + j, acc + (long)j * t.lanes + (long)r * t.pitch, ow,
                                 y + (oc + j) * plane + (long)(oy0 + r) * ow);
        }
    }
}

void yint_shortcut(const act_t *const *inputs, const int *zeros, const int32_t *m, int count,
                   int n, long size, int out_zero, int qmin, int qmax, act_t *y)
{
    long i;
    int k;
    for (i = 0; i < size; i++) {
        int64_t total = 0;
        for (k = 0; k < count; k++)
            total += (int64_t)(inputs[k][i] - zeros[k]) * m[k];
        y[i] = saturate(out_zero + yint_requantize(total, 1, n, 0), qmin, qmax);
    }
}

void yint_maxpool(const act_t *x, int c, int h, int w, int size, int stride, int pad_left,
                  int pad_top, act_t *y, int oh, int ow)
{
    int ch, oy, ox, ky, kx;
    for (ch = 0; ch < c; ch++)
        for (oy = 0; oy < oh; oy++)
            for (ox = 0; ox < ow; ox++) {
                int found = 0;
                act_t best = 0;
                for (ky = 0; ky < size; ky++)
                    for (kx = 0; kx < size; kx++) {  /* the max over real pixels only */
                        int iy = oy * stride - pad_top + ky, ix = ox * stride - pad_left + kx;
                        act_t v;
                        if (iy < 0 || iy >= h || ix < 0 || ix >= w)
                            continue;
                        v = x[((long)ch * h + iy) * w + ix];
                        if (!found || v > best)
                            best = v;
                        found = 1;
                    }
                y[((long)ch * oh + oy) * ow + ox] = best;
            }
}

void yint_upsample(const act_t *x, int c, int h, int w, int stride, act_t *y)
{
    int ch, iy, ix;
    long ow = (long)w * stride;
    for (ch = 0; ch < c; ch++)
        for (iy = 0; iy < h * stride; iy++)
            for (ix = 0; ix < (int)ow; ix++)
                y[((long)ch * h * stride + iy) * ow + ix] =
                    x[((long)ch * h + iy / stride) * w + ix / stride];
}

void yint_copy(const act_t *x, long count, act_t *y)
{
    long i;
    for (i = 0; i < count; i++)
        y[i] = x[i];
}
