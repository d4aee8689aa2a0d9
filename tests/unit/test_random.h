/* test_random.h: a deterministic PRNG for randomized unit tests
 * (splitmix64), so that a failure reproduces from its seed. */
#ifndef JOBHUB_TESTS_UNIT_TEST_RANDOM_H
#define JOBHUB_TESTS_UNIT_TEST_RANDOM_H

#include <stddef.h>
#include <stdint.h>

/* next_random advances *state and returns 64 random bits. */
static inline uint64_t next_random(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* random_below returns a number in 0..bound-1 (bound > 0). */
static inline size_t random_below(uint64_t *state, size_t bound) {
  return (size_t)(next_random(state) % bound);
}

#endif
