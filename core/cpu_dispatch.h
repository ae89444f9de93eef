#pragma once
// Run-time choice of SIMD code for hot loops in the portable build: a function
// marked ML3_CPU_CLONES is compiled three times (baseline x86-64, x86-64-v3 =
// AVX2 + FMA, x86-64-v4 = AVX-512) and the loader picks the best version this
// CPU runs (GCC/clang target_clones, an ifunc). Only for loops whose every
// operation is exactly rounded (add, mul, div, sqrt, explicit std::fma), so
// each version gives the same bits; a loop that sums in a different order per
// version must not use it. Elsewhere (other CPUs or compilers, and the
// -march=native build, which already targets this CPU) the macro is empty.
// Also empty under ThreadSanitizer: the ifunc resolver runs during relocation,
// before the TSan runtime is initialised, and its instrumented code crashes
// the program at load (seen: the TSan build's test binary segfaulted in
// adam_step's resolver before main).
#if defined(__SANITIZE_THREAD__)
#define ML3_TSAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ML3_TSAN_BUILD 1
#endif
#endif
#if defined(__x86_64__) && defined(__GNUC__) && !defined(ML3_NATIVE_BUILD) && !defined(ML3_TSAN_BUILD)
#define ML3_CPU_CLONES __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define ML3_CPU_CLONES
#endif
