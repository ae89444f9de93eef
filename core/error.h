#pragma once
// Error types shared by every layer. An Error carries one precise, user-facing
// message (file, key, what was expected); the CLI prints it and exits non-zero.
#include <stdexcept>
#include <string>

namespace ml3 {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A bad command line (unknown flag, bad value): the CLI exits with code 2.
struct UsageError : Error {
  using Error::Error;
};

// A loss, gradient or parameter that is not finite: the update that produced
// it is not applied (the runner stops with the last good checkpoint named).
struct NonFiniteError : Error {
  using Error::Error;
};

}  // namespace ml3
