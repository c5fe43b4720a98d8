/* Integer layers of a yolo-int/2 model (quantize/export_int.py): no malloc, no floating point.
 * Tensors are C x H x W, row-major; act_t, wt_t, tap_t and acc_t come from yint_config.h. */
#ifndef YINT_H
#define YINT_H

#include <stdint.h>
#include "yint_config.h"

enum { YINT_LINEAR = 0, YINT_RELU = 1, YINT_LEAKY = 2 };

typedef struct {
    const wt_t *weight;       /* cout x (cin / groups) x size x size */
    const int32_t *m, *m_neg; /* per output channel: (acc M + B) / 2^n; _neg: leaky's side */
    const int64_t *b, *b_neg;
    const int8_t *n, *n_neg;
    int cin, cout, size, stride, pad, dilation, groups, activation;
    int in_zero, out_zero, qmin, qmax;
} yint_conv_t;

int64_t yint_requantize(int64_t a, int64_t m, int n, int64_t b);
void yint_input(const uint8_t *pixels, long count, int32_t m, int n, int zero, int qmin,
                int qmax, act_t *y);
/* yint_conv's tiles (yint.c): YINT_TILE_ROWS output rows at a time, each row `ow + reach`
 * lanes apart, about YINT_LANES lanes per tile; its scratch: 4 accumulator rows of a tile, then
 * the prepared input (cin x stride x stride segments of YINT_SEG values). */
#define YINT_BLOCK 16
#define YINT_LANES 256
#define YINT_ALIGN(n) (((n) + YINT_BLOCK - 1) / YINT_BLOCK * YINT_BLOCK)
#define YINT_REACH(k, s, dil) (((k) - 1) * (dil) / (s))
#define YINT_PITCH(ow, k, s, dil) ((ow) + YINT_REACH(k, s, dil))
#define YINT_TILE_ROWS(oh, ow, k, s, dil) \
    (YINT_LANES / YINT_PITCH(ow, k, s, dil) < 1 ? 1 : \
     YINT_LANES / YINT_PITCH(ow, k, s, dil) > (oh) ? (oh) : YINT_LANES / YINT_PITCH(ow, k, s, dil))
#define YINT_SEG(oh, ow, k, s, dil) \
    YINT_ALIGN(YINT_ALIGN(YINT_TILE_ROWS(oh, ow, k, s, dil) * YINT_PITCH(ow, k, s, dil)) + \
               YINT_REACH(k, s, dil) * (YINT_PITCH(ow, k, s, dil) + 1))
void yint_conv(const yint_conv_t *p, const act_t *x, int h, int w, act_t *y, int oh, int ow,
               void *scratch);
void yint_shortcut(const act_t *const *inputs, const int *zeros, const int32_t *m, int count,
                   int n, long size, int out_zero, int qmin, int qmax, act_t *y);
void yint_maxpool(const act_t *x, int c, int h, int w, int size, int stride, int pad_left,
                  int pad_top, act_t *y, int oh, int ow);
void yint_upsample(const act_t *x, int c, int h, int w, int stride, act_t *y);
void yint_copy(const act_t *x, long count, act_t *y);

#endif
