/* Integer layers; each computes what quantize/int_runtime.py computes, bit for bit. */
#include "yint.h"

/* (a * m + b) / 2^n rounded to nearest, ties to even (quantize/fixed_point.py). The floor
 * division is written out: C99 leaves the right shift of a negative number to the compiler. */
int64_t yint_requantize(int64_t a, int64_t m, int n, int64_t b)
{
    int64_t p = a * m + b, q, r, half, one = 1;
    if (n == 0)
        return p;
    q = p >= 0 ? p >> n : -((-p + (one << n) - 1) >> n);
    r = p - q * (one << n);
    half = one << (n - 1);
    return q + (r > half || (r == half && (q & 1)));
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

static int first_inside(int offset, int stride)  /* least o with o * stride + offset >= 0 */
{
    return offset >= 0 ? 0 : (-offset + stride - 1) / stride;
}

static int last_inside(int offset, int stride, int size)  /* least o with o*stride+offset >= size */
{
    return offset >= size ? 0 : (size - 1 - offset) / stride + 1;
}

/* acc[o] += (x - zero) * w over one kernel tap, for every output pixel the tap reaches */
static void tap(const act_t *x, int h, int w, int zero, wt_t wv, int oy0, int ox0, int stride,
                int oh, int ow, acc_t *acc)
{
    int oy, ox, ys = first_inside(oy0, stride), ye = last_inside(oy0, stride, h);
    int xs = first_inside(ox0, stride), xe = last_inside(ox0, stride, w);
    if (ye > oh) ye = oh;
    if (xe > ow) xe = ow;
    for (oy = ys; oy < ye; oy++) {
        const act_t *row = x + (long)(oy * stride + oy0) * w + ox0;
        acc_t *out = acc + (long)oy * ow;
        for (ox = xs; ox < xe; ox++)
            out[ox] += (acc_t)(row[ox * stride] - zero) * wv;
    }
}

static act_t activate(const yint_conv_t *p, int c, acc_t a)
{
    int64_t r = yint_requantize(a, p->m[c], p->n[c], p->b[c]);
    if (p->activation == YINT_LEAKY && r < 0)  /* where leaky's side rounds apart */
        r = yint_requantize(a, p->m_neg[c], p->n_neg[c], p->b_neg[c]);
    else if (p->activation == YINT_RELU && r < 0)
        r = 0;
    return saturate(p->out_zero + r, p->qmin, p->qmax);
}

void yint_conv(const yint_conv_t *p, const act_t *x, int h, int w, act_t *y, int oh, int ow,
               acc_t *scratch)
{
    int cin_g = p->cin / p->groups, cout_g = p->cout / p->groups, k = p->size;
    int oc, ic, ky, kx;
    long i, area = (long)oh * ow;
    for (oc = 0; oc < p->cout; oc++) {
        int g = oc / cout_g;
        const wt_t *wc = p->weight + (long)oc * cin_g * k * k;
        for (i = 0; i < area; i++)
            scratch[i] = 0;
        for (ic = 0; ic < cin_g; ic++) {
            const act_t *xc = x + (long)(g * cin_g + ic) * h * w;
            for (ky = 0; ky < k; ky++)
                for (kx = 0; kx < k; kx++) {
                    wt_t wv = wc[(ic * k + ky) * k + kx];
                    if (wv != 0)  /* pruned and 2:4 weights cost nothing */
                        tap(xc, h, w, p->in_zero, wv, ky * p->dilation - p->pad,
                            kx * p->dilation - p->pad, p->stride, oh, ow, scratch);
                }
        }
        for (i = 0; i < area; i++)
            y[(long)oc * area + i] = activate(p, oc, scratch[i]);
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
