// mandelc is mandelr written in C: a reactor module built with clang and
// wasi-libc that draws the same deep-zoom Mandelbrot tile as a binary PGM
// image, one row per call of its exported `step` function, so that the runner
// can checkpoint it between two rows (DESIGN.md section 6). It follows the
// arithmetic of ../internal/mandelbrot operation for operation (no fused
// multiply-add: clang does not contract across statements without
// -ffp-contract=fast, and wasm has no fused instruction), so it draws the
// same image, byte for byte, as mandel and mandelr.
//
// step returns 0 while rows are left and 1 once the image is on stdout; it
// writes the fraction of rows done to the file "progress" at each whole
// percent and, at every twentieth of the rows, the same reduced picture of
// the tile so far as mandel (momonga.h's momonga_picture), which the
// volunteer's page and screensaver show. Arguments, as for mandel:
// [re [im [scale [width [height [maxiter]]]]]].
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wasi/api.h>

#include "../../workunits/sdk/momonga.h"

#pragma clang fp contract(off)

static double re = -0.743643887037158704752191506114774, im = 0.131825904205311970493132056385139, scale = 2e-11;
static int width = 1024, height = 768;
static uint32_t max_iter = 20000;
static uint32_t *counts;
static int row, started;

static void fail(const char *msg) {
	fprintf(stderr, "mandelc: %s\nusage: mandelc [re [im [scale [width [height [maxiter]]]]]]\n", msg);
	exit(2);
}

static void parse_args(void) {
	size_t argc, size;
	if (__wasi_args_sizes_get(&argc, &size) != 0) fail("cannot read arguments");
	char **argv = calloc(argc + 1, sizeof(char *));
	char *buf = malloc(size);
	if (!argv || !buf || __wasi_args_get((uint8_t **)argv, (uint8_t *)buf) != 0) fail("cannot read arguments");
	if (argc > 7) fail("too many arguments");
	double *floats[] = {&re, &im, &scale};
	for (size_t i = 1; i < argc; i++) {
		char *end;
		if (i <= 3) {
			double f = strtod(argv[i], &end);
			if (*end || end == argv[i] || f != f || f > 1e308 || f < -1e308 || (i == 3 && f <= 0)) fail("bad number");
			*floats[i - 1] = f;
			continue;
		}
		long long n = strtoll(argv[i], &end, 10);
		long long limit = i == 6 ? 1LL << 31 : 1 << 14;
		if (*end || end == argv[i] || n < 1 || n > limit) fail("bad integer");
		if (i == 4) width = (int)n;
		if (i == 5) height = (int)n;
		if (i == 6) max_iter = (uint32_t)n;
	}
	if ((long long)width * height > 1LL << 24) fail("the image is too large");
	free(buf);
	free(argv);
}

static uint32_t escape_time(double cr, double ci) {
	double x = 0, y = 0;
	for (uint32_t n = 0; n < max_iter; n++) {
		double x2 = x * x;
		double y2 = y * y;
		if (x2 + y2 > 4) return n;
		double xy = x * y;
		y = xy + xy + ci;
		x = x2 - y2 + cr;
	}
	return max_iter;
}

static void render_row(int py) {
	double half = scale / (double)width / 2;
	double ci = im - (double)(2 * py - height + 1) * half;
	uint32_t *out = counts + (size_t)py * width;
	for (int px = 0; px < width; px++) {
		double cr = re + (double)(2 * px - width + 1) * half;
		out[px] = escape_time(cr, ci);
	}
}

static void report_progress(int done, int total) {
	if (done * 100 / total == (done - 1) * 100 / total) return;
	FILE *f = fopen("progress.tmp", "w");
	if (!f) return;
	fprintf(f, "%.17g\n", (double)done / total);
	if (fclose(f) == 0) rename("progress.tmp", "progress");
}

static int cmp_u32(const void *a, const void *b) {
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

// lower_bound is the index of the first element of sorted not below v.
static size_t lower_bound(const uint32_t *sorted, size_t n, uint32_t v) {
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (sorted[mid] < v) lo = mid + 1; else hi = mid;
	}
	return lo;
}

// shade writes the grey levels of n escape times into grey (zeroed by the
// caller): black for the set, the others by rank among the escaped.
static void shade(const uint32_t *c, size_t n, unsigned char *grey) {
	uint32_t *sorted = malloc(n * sizeof(uint32_t));
	if (!sorted) { fprintf(stderr, "mandelc: out of memory\n"); exit(1); }
	memcpy(sorted, c, n * sizeof(uint32_t));
	qsort(sorted, n, sizeof(uint32_t), cmp_u32);
	uint64_t escaped = lower_bound(sorted, n, max_iter);
	for (size_t i = 0; i < n; i++) {
		if (c[i] == max_iter) continue;
		uint64_t r = lower_bound(sorted, n, c[i]);
		grey[i] = (unsigned char)(1 + 254 * r / escaped);
	}
	free(sorted);
}

// The picture of the tile so far: every step-th pixel of every step-th row,
// at most picture_side wide, with the rows to come in not_yet grey.
enum { picture_side = 256, not_yet = 40 };

static void publish_picture(int done) {
	if (done * 20 / height == (done - 1) * 20 / height) return;
	int step = (width + picture_side - 1) / picture_side;
	int pw = width / step, ph = height / step;
	if (pw < 1) pw = 1;
	if (ph < 1) ph = 1;
	uint32_t *sample = malloc((size_t)pw * ph * sizeof(uint32_t));
	unsigned char *grey = calloc((size_t)pw * ph, 1);
	if (!sample || !grey) { fprintf(stderr, "mandelc: out of memory\n"); exit(1); }
	size_t n = 0;
	for (int y = 0; y < ph && y * step < done; y++)
		for (int x = 0; x < pw; x++) sample[n++] = counts[(size_t)y * step * width + (size_t)x * step];
	shade(sample, n, grey);
	memset(grey + n, not_yet, (size_t)pw * ph - n);
	momonga_picture(pw, ph, grey, 1); // advisory, as progress: the result does not depend on it
	free(sample);
	free(grey);
}

static void write_pgm(void) {
	size_t n = (size_t)width * height;
	unsigned char *grey = calloc(n, 1);
	if (!grey) { fprintf(stderr, "mandelc: out of memory\n"); exit(1); }
	shade(counts, n, grey);
	printf("P5\n%d %d\n255\n", width, height);
	fwrite(grey, 1, n, stdout);
	if (fflush(stdout) != 0) { fprintf(stderr, "mandelc: write image failed\n"); exit(1); }
}

__attribute__((export_name("step"))) int32_t step(void) {
	if (!started) {
		parse_args();
		counts = malloc((size_t)width * height * sizeof(uint32_t));
		if (!counts) { fprintf(stderr, "mandelc: out of memory\n"); exit(1); }
		started = 1;
	}
	render_row(row);
	row++;
	report_progress(row, height);
	publish_picture(row);
	if (row < height) return 0;
	write_pgm();
	return 1;
}
