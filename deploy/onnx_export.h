#pragma once
// ml3 export --format onnx: a policy as an ONNX model (docs/deploy.md,
// "ONNX"), built with the ONNX project's own protobuf classes (Debian's
// libonnx-dev) and checked with its checker before it is written. The whole
// deterministic computation of ml3_runtime's act() is in the graph:
// observation normalisation (in double, as the runtime does), the MLP mean,
// clipping to the action bounds. In the export tool's library (ml3_onnx), never
// in ml3_runtime, which stays dependency-free.
#include <nlohmann/json.hpp>
#include <string>

#include "deploy/export.h"
#include "ml3/runtime.hpp"

namespace ml3 {

// The serialised ONNX model of `d` (opset 17, IR version 8): input "obs"
// float32 [batch, obs_dim], output "action" float32 [batch, act_dim]; the
// environment, its spec and the provenance as metadata_props. Passes
// onnx::checker::check_model (a failure throws ml3::Error). `name` names the
// source in messages.
std::string onnx_model(const runtime::PolicyData& d, const std::string& name);

// ml3 export --format onnx: the policy of the source of `args` (a run, a
// checkpoint, a loss target or a .ml3p file) written atomically to args.out.
// Returns a summary (out, bytes, env, sizes, activation, normalize, opset, ...).
nlohmann::json export_onnx(const ExportArgs& args);

}  // namespace ml3
