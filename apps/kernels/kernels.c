// kernels is a CPU-bound C command module for measuring engines against
// native code (`momonga-project bench engines`): four kernels of the kinds of
// work volunteer projects run, each printing a checksum so that a run under
// any engine, and the native build of the same file with the same flags, can
// be checked for the same result.
//
//	kernels [int|matmul|hash|float|all [SCALE]]
//
// int: a linked list of records sorted by merge sort, walked and reshuffled
// (pointer chasing, branches, integer arithmetic); matmul: a dense double
// matrix product; hash: SHA-256 over a buffer, again and again; float: an
// n-body simulation (square roots and divisions). SCALE (default 1) multiplies
// the work of each.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#pragma clang fp contract(off)

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint64_t next(void) {
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

struct node {
	struct node *next;
	uint32_t key, value;
};

static struct node *merge(struct node *a, struct node *b) {
	struct node head, *t = &head;
	while (a && b) {
		if (a->key <= b->key) {
			t->next = a;
			a = a->next;
		} else {
			t->next = b;
			b = b->next;
		}
		t = t->next;
	}
	t->next = a ? a : b;
	return head.next;
}

static struct node *sort(struct node *list) {
	// Bottom-up merge sort with a bin per power of two.
	struct node *bins[64] = {0};
	while (list) {
		struct node *n = list;
		list = list->next;
		n->next = NULL;
		int i = 0;
		for (; bins[i]; i++) {
			n = merge(bins[i], n);
			bins[i] = NULL;
		}
		bins[i] = n;
	}
	struct node *out = NULL;
	for (int i = 0; i < 64; i++) {
		if (bins[i]) out = merge(bins[i], out);
	}
	return out;
}

static uint64_t kernel_int(int scale) {
	const int n = 200000;
	struct node *nodes = malloc(sizeof(struct node) * n);
	uint64_t sum = 0;
	for (int round = 0; round < 12 * scale; round++) {
		for (int i = 0; i < n; i++) {
			nodes[i].key = (uint32_t)next();
			nodes[i].value = (uint32_t)i;
			nodes[i].next = i + 1 < n ? &nodes[i + 1] : NULL;
		}
		struct node *list = sort(&nodes[0]);
		uint32_t prev = 0;
		for (struct node *p = list; p; p = p->next) {
			if (p->key < prev) {
				fprintf(stderr, "kernels: list not sorted\n");
				exit(1);
			}
			prev = p->key;
			sum = sum * 31 + (p->value ^ (p->key >> 7));
		}
	}
	free(nodes);
	return sum;
}

static uint64_t kernel_matmul(int scale) {
	const int n = 320;
	double *a = malloc(sizeof(double) * n * n), *b = malloc(sizeof(double) * n * n), *c = malloc(sizeof(double) * n * n);
	for (int i = 0; i < n * n; i++) {
		a[i] = (double)(next() % 1000) / 1000.0;
		b[i] = (double)(next() % 1000) / 1000.0;
	}
	double trace = 0;
	for (int round = 0; round < 70 * scale; round++) {
		memset(c, 0, sizeof(double) * n * n);
		for (int i = 0; i < n; i++) {
			for (int k = 0; k < n; k++) {
				double aik = a[i * n + k];
				for (int j = 0; j < n; j++) c[i * n + j] += aik * b[k * n + j];
			}
		}
		for (int i = 0; i < n; i++) trace += c[i * n + i];
		double *t = a;
		a = c;
		c = t;
		for (int i = 0; i < n * n; i++) a[i] = a[i] / (double)n;
	}
	free(a);
	free(b);
	free(c);
	uint64_t bits;
	memcpy(&bits, &trace, sizeof bits);
	return bits;
}

static const uint32_t k256[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t ror(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

// sha256 hashes len bytes (a multiple of 64; no padding: the kernel measures
// the compression function) into h.
static void sha256(const uint8_t *p, size_t len, uint32_t h[8]) {
	static const uint32_t init[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
	memcpy(h, init, sizeof init);
	for (; len >= 64; len -= 64, p += 64) {
		uint32_t w[64];
		for (int i = 0; i < 16; i++) w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
		for (int i = 16; i < 64; i++) {
			uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
			uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
			w[i] = w[i - 16] + s0 + w[i - 7] + s1;
		}
		uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
		for (int i = 0; i < 64; i++) {
			uint32_t t1 = hh + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + k256[i] + w[i];
			uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
			hh = g;
			g = f;
			f = e;
			e = d + t1;
			d = c;
			c = b;
			b = a;
			a = t1 + t2;
		}
		h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
	}
}

static uint64_t kernel_hash(int scale) {
	const size_t size = 1 << 20;
	uint8_t *buf = malloc(size);
	for (size_t i = 0; i < size; i++) buf[i] = (uint8_t)next();
	uint32_t h[8];
	uint64_t sum = 0;
	for (int round = 0; round < 120 * scale; round++) {
		sha256(buf, size, h);
		memcpy(buf + (round * 32) % size, h, sizeof h); // each round hashes what the last one made
		sum = sum * 33 + h[0];
	}
	free(buf);
	return sum;
}

struct body {
	double x, y, z, vx, vy, vz, m;
};

static uint64_t kernel_float(int scale) {
	enum { n = 32 };
	struct body b[n];
	for (int i = 0; i < n; i++) {
		b[i] = (struct body){(double)(next() % 2000) / 100.0 - 10, (double)(next() % 2000) / 100.0 - 10, (double)(next() % 2000) / 100.0 - 10,
			0, 0, 0, 1 + (double)(next() % 100) / 100.0};
	}
	const double dt = 0.001;
	for (int step = 0; step < 200000 * scale; step++) {
		for (int i = 0; i < n; i++) {
			for (int j = i + 1; j < n; j++) {
				double dx = b[i].x - b[j].x, dy = b[i].y - b[j].y, dz = b[i].z - b[j].z;
				double d2 = dx * dx + dy * dy + dz * dz + 0.01;
				double mag = dt / (d2 * sqrt(d2));
				b[i].vx -= dx * b[j].m * mag, b[i].vy -= dy * b[j].m * mag, b[i].vz -= dz * b[j].m * mag;
				b[j].vx += dx * b[i].m * mag, b[j].vy += dy * b[i].m * mag, b[j].vz += dz * b[i].m * mag;
			}
		}
		for (int i = 0; i < n; i++) b[i].x += dt * b[i].vx, b[i].y += dt * b[i].vy, b[i].z += dt * b[i].vz;
	}
	double e = 0;
	for (int i = 0; i < n; i++) e += 0.5 * b[i].m * (b[i].vx * b[i].vx + b[i].vy * b[i].vy + b[i].vz * b[i].vz);
	uint64_t bits;
	memcpy(&bits, &e, sizeof bits);
	return bits;
}

static const struct {
	const char *name;
	uint64_t (*run)(int);
} kernels[] = {{"int", kernel_int}, {"matmul", kernel_matmul}, {"hash", kernel_hash}, {"float", kernel_float}};

int main(int argc, char **argv) {
	const char *which = argc > 1 ? argv[1] : "all";
	int scale = argc > 2 ? atoi(argv[2]) : 1;
	if (scale < 1 || argc > 3) {
		fprintf(stderr, "usage: kernels [int|matmul|hash|float|all [SCALE]]\n");
		return 2;
	}
	int ran = 0;
	for (size_t i = 0; i < sizeof kernels / sizeof kernels[0]; i++) {
		if (strcmp(which, "all") != 0 && strcmp(which, kernels[i].name) != 0) continue;
		rng = 0x9e3779b97f4a7c15u;
		printf("%s %016llx\n", kernels[i].name, (unsigned long long)kernels[i].run(scale));
		ran++;
	}
	if (!ran) {
		fprintf(stderr, "kernels: no kernel named %s\n", which);
		return 2;
	}
	return 0;
}
