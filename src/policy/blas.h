#pragma once
// Row-major matrix products through the Fortran BLAS interface (every BLAS
// has it; LibTorch links libblas.so.3, which Debian resolves to OpenBLAS and
// its run-time choice of this CPU's kernels, AVX-512 included, in the
// portable build too). ml3_learn links BLAS::BLAS.
extern "C" {
void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k, const float* alpha,
            const float* a, const int* lda, const float* b, const int* ldb, const float* beta, float* c,
            const int* ldc);
void dgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k, const double* alpha,
            const double* a, const int* lda, const double* b, const int* ldb, const double* beta, double* c,
            const int* ldc);
}

namespace ml3 {

// Row-major C[m x n] = op(A) op(B), op(X) = X or X^T of the stored row-major
// matrices with row lengths lda, ldb (C's row length n); as column-major
// C^T = op(B)^T op(A)^T.
inline void gemm(bool ta, bool tb, int m, int n, int k, const float* a, int lda, const float* b, int ldb, float* c) {
  const float one = 1.f, zero = 0.f;
  sgemm_(tb ? "T" : "N", ta ? "T" : "N", &n, &m, &k, &one, b, &ldb, a, &lda, &zero, c, &n);
}
inline void gemm(bool ta, bool tb, int m, int n, int k, const double* a, int lda, const double* b, int ldb,
                 double* c) {
  const double one = 1.0, zero = 0.0;
  dgemm_(tb ? "T" : "N", ta ? "T" : "N", &n, &m, &k, &one, b, &ldb, a, &lda, &zero, c, &n);
}

}  // namespace ml3
