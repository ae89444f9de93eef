#pragma once
// Small networking helpers (LibTorch-free).

namespace ml3 {

// A TCP port that was free a moment ago on 127.0.0.1 (the rendezvous port of
// `ml3 launch`); throws ml3::Error when none can be had.
int free_local_port();

}  // namespace ml3
