#include "deploy/export.h"
#include "deploy/checkpoint_entries.h"

#include <fmt/format.h>

#include <filesystem>
#include <cstring>
#include <sstream>

#include "core/error.h"
#include "core/obs_norm.h"
#include "envs/env.h"
#include "deploy/policy_section.h"
#include "core/run_paths.h"

namespace fs = std::filesystem;

namespace ml3 {
namespace {

std::string shape_text(const std::vector<int64_t>& s) {
  std::string t = "[";
  for (size_t i = 0; i < s.size(); ++i) t += (i ? "," : "") + std::to_string(s[i]);
  return t + "]";
}

// The float32 values of policy tensor `i`, which must have `shape`.
std::vector<float> policy_tensor(const Archive& a, size_t i, const std::vector<int64_t>& shape,
                                 const std::string& network) {
  const std::string name = ckpt::kPolicy + std::to_string(i);
  const Blob& b = a.get(name);
  if (b.dtype != "f32")
    throw Error(fmt::format("{}: entry {} is {}, expected f32 (policies train in float32)", a.path(), name, b.dtype));
  if (b.shape != shape)
    throw Error(fmt::format("{}: entry {} has shape {}, the stored config's network ({}) expects {}", a.path(), name,
                            shape_text(b.shape), network, shape_text(shape)));
  std::vector<float> v(b.numel());
  std::memcpy(v.data(), b.bytes.data(), b.bytes.size());
  return v;
}

runtime::Activation runtime_activation(const std::string& name) {
  if (name == "tanh") return runtime::Activation::Tanh;
  if (name == "relu") return runtime::Activation::Relu;
  if (name == "elu") return runtime::Activation::Elu;
  throw Error("unknown activation '" + name + "'");
}

// What a policy file says about its environment: the spec and the options.
runtime::PolicyData env_part(const std::string& env_name, const Config& env_opts, const EnvSpec& spec) {
  runtime::PolicyData d;
  d.env = env_name;
  d.obs_dim = static_cast<uint32_t>(spec.obs_dim);
  d.act_dim = static_cast<uint32_t>(spec.act_dim);
  d.obs_names = spec.obs_names;
  d.act_low = spec.act_low;
  d.act_high = spec.act_high;
  d.control_period = spec.timestep * spec.frame_skip;
  d.episode_steps = static_cast<uint32_t>(spec.episode_steps);
  for (const auto& [k, v] : env_opts.values()) d.env_options += k + "=" + v + "\n";
  return d;
}

}  // namespace

runtime::PolicyData policy_from_checkpoint(const Archive& a) {
  const std::string& path = a.path();
  if (a.kind() != "checkpoint") throw Error(path + ": is a " + a.kind() + " file, expected a checkpoint of ml3 train");
  const auto& meta = a.meta();
  const std::string algorithm = meta.value("algorithm", std::string("?"));
  if (!a.has("policy/0") || !a.has("norm/state") || !meta.contains("env") || !meta.contains("config"))
    throw Error(fmt::format("{}: a checkpoint of algorithm '{}' without a policy and its normaliser; export and render "
                            "need a checkpoint of ml3 train (ppo, reinforce, learned_loss)",
                            path, algorithm));
  const std::string env_name = meta.at("env").get<std::string>();
  // The stored config's env.* and policy.* sections (the rest belongs to the
  // algorithm and does not change what the policy computes).
  Schema schema;
  schema.add_string("env.name", env_name, "environment name");
  schema.include("env.", find_env(env_name).schema);
  declare<PolicySection>(schema, "policy.");
  Config cfg(schema);
  const std::string text = meta.at("config").get<std::string>();
  cfg.load_yaml_string(text, path + " (stored config)", "env.");
  cfg.load_yaml_string(text, path + " (stored config)", "policy.");
  const Config env_opts = cfg.subset("env.");
  const auto ps = read<PolicySection>(cfg, "policy.");
  const EnvSpec spec = make_env(env_name, env_opts)->spec();

  runtime::PolicyData d = env_part(env_name, env_opts, spec);
  d.source = fmt::format("algorithm={}\niteration={}\nenv_steps={}\n", algorithm, meta.value("iteration", 0),
                         meta.value("env_steps", int64_t{0}));

  ObsNormalizer norm(spec.obs_dim, ps.obs_norm);
  norm.load(a, ckpt::kNorm);
  d.normalize = norm.active();
  if (d.normalize) {
    d.obs_clip = norm.clip();
    for (int j = 0; j < spec.obs_dim; ++j) {
      d.obs_center.push_back(norm.center(j));
      d.obs_scale.push_back(norm.scale(j));
    }
  }

  d.activation = runtime_activation(ps.activation);
  d.sizes.push_back(d.obs_dim);
  for (int h : ps.hidden) d.sizes.push_back(static_cast<uint32_t>(h));
  d.sizes.push_back(d.act_dim);
  std::string network = fmt::format("{} obs", d.obs_dim);
  for (int h : ps.hidden) network += fmt::format(" -> {}", h);
  network += fmt::format(" -> {} actions, {}", d.act_dim, ps.activation);
  const size_t layers = d.sizes.size() - 1;
  for (size_t l = 0; l < layers; ++l) {
    const int64_t in = d.sizes[l], out = d.sizes[l + 1];
    d.weights.push_back(policy_tensor(a, 2 * l, {in, out}, network));
    d.biases.push_back(policy_tensor(a, 2 * l + 1, {out}, network));
  }
  // policy/<2 layers> is the log-std (not part of the deterministic action);
  // anything after it means another network layout.
  policy_tensor(a, 2 * layers, {static_cast<int64_t>(d.act_dim)}, network);
  if (a.has(ckpt::kPolicy + std::to_string(2 * layers + 1)))
    throw Error(fmt::format("{}: more policy tensors than the stored config's network ({}) has", path, network));
  runtime::validate(d, path);
  return d;
}

std::string checkpoint_of(const std::string& run_dir, const std::string& checkpoint) {
  return checkpoint.empty() ? last_checkpoint(run_dir).string() : checkpoint;
}

runtime::PolicyData policy_from_loss_target(const Archive& a) {
  const std::string& path = a.path();
  const auto& meta = a.meta();
  if (!meta.contains("spec")) throw Error(path + ": no loss spec; not a loss file of ml3 meta-train");
  const auto& spec = meta.at("spec");
  const auto target_hidden = spec.value("target_hidden", std::vector<int>{});
  if (target_hidden.empty())
    throw Error(path + ": this loss has no target network (meta-trained without loss.target); nothing to export");
  const std::string env_name = meta.value("env", std::string());
  if (env_name.empty()) throw Error(path + ": the loss file does not name its environment (meta key 'env')");
  // The environment with its default options (a loss file does not record
  // the meta-training's env.* options).
  const Config env_opts(find_env(env_name).schema);
  const EnvSpec es = make_env(env_name, env_opts)->spec();
  if (spec.at("obs_dim").get<int>() != es.obs_dim || spec.at("act_dim").get<int>() != es.act_dim)
    throw Error(fmt::format("{}: a loss for {} observations and {} actions; {} has {} and {}", path,
                            spec.at("obs_dim").get<int>(), spec.at("act_dim").get<int>(), env_name, es.obs_dim,
                            es.act_dim));
  runtime::PolicyData d = env_part(env_name, env_opts, es);
  d.source = fmt::format("loss_target={}\nmeta_iteration={}\n", path, meta.value("meta_iteration", 0));
  d.activation = runtime_activation(spec.at("activation").get<std::string>());
  d.sizes.push_back(d.obs_dim);
  for (int h : target_hidden) d.sizes.push_back(static_cast<uint32_t>(h));
  d.sizes.push_back(d.act_dim);
  // phi = the loss network's tensors (weight, bias per layer), then T's.
  const size_t first = 2 * (spec.at("hidden").size() + 1);
  std::string network = "the target network " + std::to_string(d.obs_dim);
  for (int h : target_hidden) network += "-" + std::to_string(h);
  network += "-" + std::to_string(d.act_dim);
  for (size_t l = 0; l + 1 < d.sizes.size(); ++l) {
    const int64_t in = d.sizes[l], out = d.sizes[l + 1];
    for (int part = 0; part < 2; ++part) {
      const std::string name = "phi/" + std::to_string(first + 2 * l + part);
      const std::vector<int64_t> shape = part ? std::vector<int64_t>{out} : std::vector<int64_t>{in, out};
      if (!a.has(name)) throw Error(fmt::format("{}: entry {} of {} is missing", path, name, network));
      const Blob& b = a.get(name);
      if (b.dtype != "f32" || b.shape != shape)
        throw Error(fmt::format("{}: entry {} is {} {}, {} expects f32 {}", path, name, b.dtype, shape_text(b.shape),
                                network, shape_text(shape)));
      std::vector<float> v(b.numel());
      std::memcpy(v.data(), b.bytes.data(), b.bytes.size());
      (part ? d.biases : d.weights).push_back(std::move(v));
    }
  }
  runtime::validate(d, path);
  return d;
}

runtime::PolicyData export_source(const ExportArgs& args, std::string* path) {
  if (args.format != "ml3p" && args.format != "onnx")
    throw UsageError("export: --format " + args.format + " is not one of ml3p, onnx");
  if (args.run_dir.empty() + args.checkpoint.empty() + args.loss_target.empty() + args.policy.empty() != 3)
    throw UsageError("export needs exactly one of --run DIR, --checkpoint FILE, --loss-target LOSS and --policy FILE");
  if (!args.policy.empty() && args.format != "onnx")
    throw UsageError("export: --policy FILE.ml3p is a source for --format onnx (it already is a .ml3p file)");
  if (args.out.empty()) throw UsageError("export needs --out FILE");
  *path = !args.policy.empty()        ? args.policy
          : !args.loss_target.empty() ? args.loss_target
                                      : checkpoint_of(args.run_dir, args.checkpoint);
  if (fs::exists(args.out) && !args.force)
    throw Error(args.out + ": file already exists; pass --force to overwrite it");
  if (!args.policy.empty()) return runtime::read_policy_file(*path);
  return args.loss_target.empty() ? policy_from_checkpoint(Archive::load(*path, "checkpoint"))
                                  : policy_from_loss_target(Archive::load(*path, "learned_loss"));
}

nlohmann::json export_policy(const ExportArgs& args) {
  if (args.format != "ml3p") throw UsageError("export_policy writes .ml3p files; --format onnx: export_onnx");
  std::string path;
  const runtime::PolicyData d = export_source(args, &path);
  const std::string bytes = runtime::encode(d);
  write_file_atomic(args.out, bytes);
  uint64_t checksum;
  std::memcpy(&checksum, bytes.data() + bytes.size() - 8, 8);
  nlohmann::json j = export_summary(path, args.out, bytes.size(), d);
  j["checkpoint"] = path;
  j["format_version"] = runtime::kFormatVersion;
  j["checksum"] = fmt::format("{:016x}", checksum);
  return j;
}

nlohmann::json export_summary(const std::string& source, const std::string& out, size_t bytes,
                              const runtime::PolicyData& d) {
  return {{"source", source},
          {"out", out},
          {"bytes", bytes},
          {"env", d.env},
          {"obs_dim", d.obs_dim},
          {"act_dim", d.act_dim},
          {"sizes", d.sizes},
          {"activation", runtime::activation_name(d.activation)},
          {"normalize", d.normalize}};
}

std::vector<std::string> policy_env_overrides(const runtime::PolicyData& p) {
  std::vector<std::string> out;
  std::istringstream in(p.env_options);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back("env." + line);
  return out;
}

}  // namespace ml3
