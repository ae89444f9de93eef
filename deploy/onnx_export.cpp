// ml3 export --format onnx (deploy/onnx_export.h): the graph, node by node,
// with ONNX's generated protobuf classes; checked by onnx::checker.
#include "deploy/onnx_export.h"

#include <fmt/format.h>
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <cstdio>
#include <exception>

#include "core/archive.h"
#include "core/error.h"

#ifndef ML3_VERSION
#define ML3_VERSION "unknown"
#endif

namespace ml3 {
namespace {

constexpr int kOpset = 17;       // the newest opset ONNX 1.12's checker knows
constexpr int kIrVersion = 8;    // ONNX 1.12's IR version
constexpr const char* kInput = "obs";
constexpr const char* kOutput = "action";

std::string num(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.17g", v);
  return b;
}

template <class T>
std::string join(const std::vector<T>& v, const char* sep) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += sep;
    if constexpr (std::is_floating_point_v<T>)
      s += num(v[i]);
    else if constexpr (std::is_arithmetic_v<T>)
      s += std::to_string(v[i]);
    else
      s += v[i];
  }
  return s;
}

class GraphBuilder {
 public:
  explicit GraphBuilder(onnx::GraphProto* g) : g_(g) {}

  // A constant tensor (float32 or float64, raw little-endian bytes).
  template <class T>
  std::string constant(const std::string& name, const std::vector<int64_t>& dims, const std::vector<T>& values) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>);
    onnx::TensorProto* t = g_->add_initializer();
    t->set_name(name);
    t->set_data_type(std::is_same_v<T, float> ? onnx::TensorProto::FLOAT : onnx::TensorProto::DOUBLE);
    for (int64_t d : dims) t->add_dims(d);
    t->set_raw_data(values.data(), values.size() * sizeof(T));
    return name;
  }
  onnx::NodeProto* node(const std::string& op, const std::vector<std::string>& inputs, const std::string& output) {
    onnx::NodeProto* n = g_->add_node();
    n->set_op_type(op);
    n->set_name(output);
    for (const auto& i : inputs) n->add_input(i);
    n->add_output(output);
    return n;
  }
  std::string cast(const std::string& in, const std::string& out, onnx::TensorProto::DataType to) {
    onnx::AttributeProto* a = node("Cast", {in}, out)->add_attribute();
    a->set_name("to");
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(to);
    return out;
  }
  void value(onnx::ValueInfoProto* v, const std::string& name, int64_t width, const std::string& doc) {
    v->set_name(name);
    v->set_doc_string(doc);
    onnx::TypeProto::Tensor* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(onnx::TensorProto::FLOAT);
    t->mutable_shape()->add_dim()->set_dim_param("batch");
    t->mutable_shape()->add_dim()->set_dim_value(width);
  }

 private:
  onnx::GraphProto* g_;
};

}  // namespace

std::string onnx_model(const runtime::PolicyData& d, const std::string& name) {
  runtime::validate(d, name);
  onnx::ModelProto m;
  m.set_ir_version(kIrVersion);
  onnx::OperatorSetIdProto* opset = m.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOpset);
  m.set_producer_name("ml3");
  m.set_producer_version(ML3_VERSION);
  m.set_model_version(runtime::kFormatVersion);
  m.set_doc_string(fmt::format(
      "ml3 policy for the environment '{}': action = clip(MLP(normalise(obs)), act_low, act_high), the deterministic "
      "action of ml3_runtime's act() (docs/deploy.md). Observations with NaN or infinity are not replaced by the safe "
      "action here; check them before calling.",
      d.env));
  onnx::GraphProto* g = m.mutable_graph();
  g->set_name("ml3_policy");
  GraphBuilder b(g);
  b.value(g->add_input(), kInput, d.obs_dim, "observation rows, obs_dim values each (metadata obs_names)");
  b.value(g->add_output(), kOutput, d.act_dim, "deterministic action rows within [act_low, act_high]");

  // Observation normalisation, in double as ml3_runtime computes it, then float32.
  std::string x = kInput;
  if (d.normalize) {
    const int64_t od = d.obs_dim;
    b.cast(x, "obs_f64", onnx::TensorProto::DOUBLE);
    b.node("Sub", {"obs_f64", b.constant<double>("obs_center", {od}, d.obs_center)}, "obs_centered");
    b.node("Div", {"obs_centered", b.constant<double>("obs_scale", {od}, d.obs_scale)}, "obs_scaled");
    b.node("Clip",
           {"obs_scaled", b.constant<double>("obs_clip_low", {}, {-d.obs_clip}),
            b.constant<double>("obs_clip_high", {}, {d.obs_clip})},
           "obs_clipped");
    x = b.cast("obs_clipped", "obs_normalised", onnx::TensorProto::FLOAT);
  }
  // The MLP mean: Gemm per layer (weights stored input-major: y = x W + b),
  // the activation between layers.
  const size_t layers = d.sizes.size() - 1;
  const char* act_op = d.activation == runtime::Activation::Tanh   ? "Tanh"
                       : d.activation == runtime::Activation::Relu ? "Relu"
                                                                   : "Elu";
  for (size_t l = 0; l < layers; ++l) {
    const int64_t in = d.sizes[l], out = d.sizes[l + 1];
    const std::string y = l + 1 == layers ? "action_mean" : fmt::format("layer{}_linear", l);
    b.node("Gemm",
           {x, b.constant<float>(fmt::format("layer{}_weight", l), {in, out}, d.weights[l]),
            b.constant<float>(fmt::format("layer{}_bias", l), {out}, d.biases[l])},
           y);
    x = y;
    if (l + 1 < layers) {
      x = fmt::format("layer{}_{}", l, runtime::activation_name(d.activation));
      onnx::NodeProto* n = b.node(act_op, {y}, x);
      if (d.activation == runtime::Activation::Elu) {
        onnx::AttributeProto* a = n->add_attribute();
        a->set_name("alpha");
        a->set_type(onnx::AttributeProto::FLOAT);
        a->set_f(1.0f);
      }
    }
  }
  // Clipping to the action bounds, per dimension: min(max(mean, low), high).
  const std::vector<float> low(d.act_low.begin(), d.act_low.end()), high(d.act_high.begin(), d.act_high.end());
  b.node("Max", {x, b.constant<float>("act_low", {int64_t(d.act_dim)}, low)}, "action_above_low");
  b.node("Min", {"action_above_low", b.constant<float>("act_high", {int64_t(d.act_dim)}, high)}, kOutput);

  auto meta = [&](const std::string& key, const std::string& value) {
    onnx::StringStringEntryProto* p = m.add_metadata_props();
    p->set_key(key);
    p->set_value(value);
  };
  meta("ml3_version", ML3_VERSION);
  meta("env", d.env);
  meta("obs_dim", std::to_string(d.obs_dim));
  meta("act_dim", std::to_string(d.act_dim));
  meta("obs_names", join(d.obs_names, ","));
  meta("act_low", join(d.act_low, ","));
  meta("act_high", join(d.act_high, ","));
  meta("control_period", num(d.control_period));
  meta("episode_steps", std::to_string(d.episode_steps));
  meta("env_options", d.env_options);
  meta("source", d.source);
  meta("activation", runtime::activation_name(d.activation));
  meta("sizes", join(d.sizes, ","));
  meta("observation_normalisation", d.normalize ? "on (in the graph)" : "off");
  meta("inputs", fmt::format("{}: float32 [batch, {}]", kInput, d.obs_dim));
  meta("outputs", fmt::format("{}: float32 [batch, {}]", kOutput, d.act_dim));
  try {
    onnx::checker::check_model(m);
  } catch (const std::exception& e) {
    throw Error(fmt::format("{}: the ONNX model built from it fails onnx::checker: {}", name, e.what()));
  }
  std::string bytes;
  if (!m.SerializeToString(&bytes)) throw Error(name + ": cannot serialise the ONNX model");
  return bytes;
}

nlohmann::json export_onnx(const ExportArgs& args) {
  if (args.format != "onnx") throw UsageError("export_onnx writes --format onnx");
  std::string path;
  const runtime::PolicyData d = export_source(args, &path);
  const std::string bytes = onnx_model(d, path);
  write_file_atomic(args.out, bytes);
  nlohmann::json j = export_summary(path, args.out, bytes.size(), d);
  j["format"] = "onnx";
  j["opset"] = kOpset;
  j["input"] = kInput;
  j["output"] = kOutput;
  return j;
}

}  // namespace ml3
