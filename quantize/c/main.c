/* Reads a raw image (uint8, RGB, channels x height x width, the model's input size) and writes
 * every head's integers (channels x height x width, little-endian act_t), head after head. */
#include <stdio.h>
#include <stdint.h>
#include "model.h"

static uint8_t pixels[YINT_IN_BYTES];

static int write_head(FILE *f, const act_t *t, long count)
{
    long i;
    int b;
    for (i = 0; i < count; i++) {
        uint64_t v = (uint64_t)(int64_t)t[i];
        for (b = 0; b < (int)sizeof(act_t); b++)
            if (fputc((int)((v >> (8 * b)) & 0xff), f) == EOF)
                return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const act_t *heads[YINT_HEADS];
    FILE *f;
    int k;
    if (argc != 3) {
        fprintf(stderr, "usage: %s image.raw heads.bin (image: %d x %d x %d uint8, CHW RGB)\n",
                argv[0], YINT_IN_C, YINT_IN_H, YINT_IN_W);
        return 2;
    }
    f = fopen(argv[1], "rb");
    if (!f || fread(pixels, 1, YINT_IN_BYTES, f) != YINT_IN_BYTES) {
        fprintf(stderr, "%s: cannot read %d bytes of image\n", argv[1], YINT_IN_BYTES);
        return 1;
    }
    fclose(f);
    yint_model(pixels, heads);
    f = fopen(argv[2], "wb");
    if (!f) {
        fprintf(stderr, "%s: cannot write\n", argv[2]);
        return 1;
    }
    for (k = 0; k < YINT_HEADS; k++)
        if (write_head(f, heads[k], yint_head_size[k])) {
            fprintf(stderr, "%s: write failed\n", argv[2]);
            return 1;
        }
    return fclose(f) != 0;
}
