/* momonga.h: the app checkpoint SDK for C apps built with wasi-libc, the same
 * protocol as the Go package github.com/momonga-project/momonga/workunits/sdk
 * (see its documentation). Header only:
 *
 *   if (momonga_time_to_checkpoint()) momonga_checkpoint(&state, sizeof state);
 *   momonga_progress(done / total);
 *   size_t n = momonga_resume(&state, sizeof state);   // 0: start from the beginning
 *   momonga_picture(w, h, pixels, 1);   // optional: a picture of the state (1 grey, 3 RGB)
 */
#ifndef MOMONGA_H
#define MOMONGA_H

#include <stdio.h>
#include <sys/stat.h>

static inline int momonga_time_to_checkpoint(void) {
	struct stat st;
	return stat(".momonga/due", &st) == 0;
}

/* momonga_checkpoint saves n bytes of state; 0 on success. */
static inline int momonga_checkpoint(const void *state, size_t n) {
	mkdir(".momonga", 0700);
	FILE *f = fopen(".momonga/state.tmp", "wb");
	if (!f) return -1;
	size_t w = fwrite(state, 1, n, f);
	if (fclose(f) != 0 || w != n) return -1;
	return rename(".momonga/state.tmp", ".momonga/state");
}

/* momonga_resume reads the saved state into buf (at most n bytes) and returns
 * its size, or 0 when the task starts from the beginning. */
static inline size_t momonga_resume(void *buf, size_t n) {
	FILE *f = fopen(".momonga/state", "rb");
	if (!f) return 0;
	size_t r = fread(buf, 1, n, f);
	fclose(f);
	return r;
}

static inline void momonga_progress(double fraction) {
	FILE *f = fopen("progress.tmp", "w");
	if (!f) return;
	fprintf(f, "%.17g\n", fraction < 0 ? 0 : fraction > 1 ? 1 : fraction);
	if (fclose(f) == 0) rename("progress.tmp", "progress");
}

/* momonga_picture publishes a picture of the app's state for the volunteer's
 * page and screensaver: w*h*channels bytes, row by row from the top, with
 * channels 1 (grey) or 3 (RGB), sides from 1 to 1024; 0 on success. */
static inline int momonga_picture(int w, int h, const unsigned char *pixels, int channels) {
	if (w < 1 || h < 1 || w > 1024 || h > 1024 || (channels != 1 && channels != 3)) return -1;
	mkdir(".momonga", 0700);
	FILE *f = fopen(".momonga/picture.tmp", "wb");
	if (!f) return -1;
	size_t n = (size_t)w * h * channels;
	fprintf(f, "%s\n%d %d\n255\n", channels == 1 ? "P5" : "P6", w, h);
	size_t wr = fwrite(pixels, 1, n, f);
	if (fclose(f) != 0 || wr != n) return -1;
	return rename(".momonga/picture.tmp", ".momonga/picture");
}

#endif
