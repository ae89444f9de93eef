// Minari datasets <-> demonstrations (envs/minari.h; mapping in docs/demos.md,
// section 7). HDF5 through its C API.
#include "envs/minari.h"

#include <fmt/format.h>
#include <hdf5.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "core/archive.h"
#include "core/error.h"

namespace fs = std::filesystem;

namespace ml3 {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// The layout version of Minari's storage this follows (metadata.json beside
// main_data.hdf5, checked against Minari's minari_storage.py and
// hdf5_storage.py).
constexpr const char* kMinariVersion = "0.5.0";

// One HDF5 identifier, closed with the function of its kind.
class H5 {
 public:
  explicit H5(hid_t id = -1) : id_(id) {}
  H5(const H5&) = delete;
  H5& operator=(const H5&) = delete;
  H5(H5&& o) noexcept : id_(o.id_) { o.id_ = -1; }
  H5& operator=(H5&& o) noexcept {
    if (this != &o) reset(), id_ = o.id_, o.id_ = -1;
    return *this;
  }
  ~H5() { reset(); }
  void reset() {
    if (id_ < 0) return;
    switch (H5Iget_type(id_)) {
      case H5I_FILE: H5Fclose(id_); break;
      case H5I_GROUP: H5Gclose(id_); break;
      case H5I_DATASET: H5Dclose(id_); break;
      case H5I_DATASPACE: H5Sclose(id_); break;
      case H5I_DATATYPE: H5Tclose(id_); break;
      case H5I_ATTR: H5Aclose(id_); break;
      default: break;
    }
    id_ = -1;
  }
  hid_t get() const { return id_; }
  hid_t release() {
    const hid_t id = id_;
    id_ = -1;
    return id;
  }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_;
};

// HDF5 prints its error stack to stderr by default; our messages say it all.
void quiet_hdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

void check(herr_t status, const std::string& what) {
  if (status < 0) throw Error(what);
}

// ---- writing ------------------------------------------------------------------
class Writer {
 public:
  explicit Writer(std::string path) : path_(std::move(path)) {
    file_ = H5(H5Fcreate(path_.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT));
    if (!file_.ok()) throw Error(path_ + ": cannot create the HDF5 file");
    // h5py's bool: an enum of int8 with FALSE = 0 and TRUE = 1 (numpy reads it as bool).
    bool_ = H5(H5Tenum_create(H5T_NATIVE_INT8));
    for (int8_t v : {int8_t{0}, int8_t{1}}) H5Tenum_insert(bool_.get(), v ? "TRUE" : "FALSE", &v);
  }
  hid_t file() const { return file_.get(); }
  H5 group(hid_t parent, const std::string& name) {
    H5 g(H5Gcreate2(parent, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    if (!g.ok()) throw Error(fmt::format("{}: cannot create group {}", path_, name));
    return g;
  }
  void floats(hid_t group, const std::string& name, std::vector<hsize_t> dims, const float* data) {
    write(group, name, dims, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, data);
  }
  void bools(hid_t group, const std::string& name, const std::vector<int8_t>& v) {
    write(group, name, {v.size()}, bool_.get(), bool_.get(), v.data());
  }
  void attr_i64(hid_t obj, const std::string& name, int64_t v) { attr(obj, name, {}, H5T_STD_I64LE, H5T_NATIVE_INT64, &v); }
  void attr_f64(hid_t obj, const std::string& name, const std::vector<double>& v, bool scalar = false) {
    attr(obj, name, scalar ? std::vector<hsize_t>{} : std::vector<hsize_t>{v.size()}, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
         v.data());
  }
  void close() {
    bool_.reset();
    if (H5Fclose(file_.release()) < 0) throw Error(path_ + ": cannot write the HDF5 file");
  }

 private:
  void write(hid_t group, const std::string& name, const std::vector<hsize_t>& dims, hid_t file_type, hid_t mem_type,
             const void* data) {
    H5 space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
    H5 ds(H5Dcreate2(group, name.c_str(), file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    if (!ds.ok()) throw Error(fmt::format("{}: cannot create dataset {}", path_, name));
    check(H5Dwrite(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data),
          fmt::format("{}: cannot write dataset {}", path_, name));
  }
  void attr(hid_t obj, const std::string& name, const std::vector<hsize_t>& dims, hid_t file_type, hid_t mem_type,
            const void* data) {
    H5 space(dims.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, dims.data(), nullptr));
    H5 a(H5Acreate2(obj, name.c_str(), file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT));
    if (!a.ok()) throw Error(fmt::format("{}: cannot create attribute {}", path_, name));
    check(H5Awrite(a.get(), mem_type, data), fmt::format("{}: cannot write attribute {}", path_, name));
  }
  std::string path_;
  H5 file_, bool_;
};

// A Gymnasium Box as Minari serialises it (a JSON string; +-Infinity as Python's json writes them).
std::string box_json(int dim, const std::vector<double>& low, const std::vector<double>& high) {
  auto number = [](double x) {  // shortest round-trip text, with a decimal point as Python writes floats
    std::string t = fmt::format("{}", x);
    return t.find_first_of(".eni") == std::string::npos ? t + ".0" : t;
  };
  auto list = [&](const std::vector<double>& v, const char* inf) {
    std::string s = "[";
    for (int j = 0; j < dim; ++j) s += (j ? ", " : "") + (v.empty() ? std::string(inf) : number(v[j]));
    return s + "]";
  };
  return fmt::format(R"({{"type": "Box", "dtype": "float32", "shape": [{}], "low": {}, "high": {}}})", dim,
                     list(low, "-Infinity"), list(high, "Infinity"));
}

// ---- reading ------------------------------------------------------------------
struct Array {
  std::vector<hsize_t> dims;
  std::vector<float> values;
};

class Reader {
 public:
  explicit Reader(std::string path) : path_(std::move(path)) {
    file_ = H5(H5Fopen(path_.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
    if (!file_.ok()) throw Error(path_ + ": not an HDF5 file (cannot open it with HDF5)");
  }
  hid_t file() const { return file_.get(); }
  const std::string& path() const { return path_; }
  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw Error(fmt::format("{}: {}: {}", path_, key, what));
  }
  bool has(hid_t group, const std::string& name) const { return H5Lexists(group, name.c_str(), H5P_DEFAULT) > 0; }
  // The object `name` of `parent` (a group or a dataset; its kind: H5Iget_type).
  H5 open(hid_t parent, const std::string& name) const { return H5(H5Oopen(parent, name.c_str(), H5P_DEFAULT)); }
  H5 group(const std::string& name) const {
    H5 g = open(file_.get(), name);
    if (H5Iget_type(g.get()) != H5I_GROUP) fail(name, "not a group (expected an episode group)");
    return g;
  }
  // The numeric dataset `group/name` as float32 (HDF5 converts), or a failure naming it.
  Array floats(hid_t group, const std::string& episode, const std::string& name, const char* expected) const {
    const std::string key = episode + "/" + name;
    if (!has(group, name)) fail(key, fmt::format("missing (expected {})", expected));
    H5 ds = open(group, name);
    if (H5Iget_type(ds.get()) != H5I_DATASET)
      fail(key, fmt::format("is a group, expected a dataset ({}); ml3 reads Box (flat array) spaces only, not Dict or "
                            "Tuple spaces",
                            expected));
    H5 type(H5Dget_type(ds.get()));
    const H5T_class_t cls = H5Tget_class(type.get());
    H5 space(H5Dget_space(ds.get()));
    Array a;
    a.dims.resize(std::max(0, H5Sget_simple_extent_ndims(space.get())));
    H5Sget_simple_extent_dims(space.get(), a.dims.data(), nullptr);
    size_t n = 1;
    for (hsize_t d : a.dims) n *= d;
    if (cls != H5T_FLOAT && cls != H5T_INTEGER && !(cls == H5T_ENUM && H5Tget_size(type.get()) == 1))
      fail(key, fmt::format("is not numeric (expected {})", expected));
    a.values.resize(n);
    if (cls == H5T_ENUM) {  // h5py's bool: read the bytes as they are
      std::vector<int8_t> raw(n);
      if (n && H5Dread(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()) < 0) fail(key, "cannot read");
      for (size_t k = 0; k < n; ++k) a.values[k] = raw[k];
    } else if (n && H5Dread(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, a.values.data()) < 0) {
      fail(key, "cannot read");
    }
    return a;
  }
  // A numeric attribute of `obj` as doubles (empty when absent).
  std::vector<double> attr(hid_t obj, const std::string& key, const std::string& name) const {
    if (H5Aexists(obj, name.c_str()) <= 0) return {};
    H5 a(H5Aopen(obj, name.c_str(), H5P_DEFAULT));
    H5 type(H5Aget_type(a.get()));
    const H5T_class_t cls = H5Tget_class(type.get());
    if (cls != H5T_FLOAT && cls != H5T_INTEGER) fail(key + " attribute '" + name + "'", "is not numeric");
    H5 space(H5Aget_space(a.get()));
    const hssize_t n = H5Sget_simple_extent_npoints(space.get());
    std::vector<double> v(static_cast<size_t>(std::max<hssize_t>(n, 0)));
    if (!v.empty() && H5Aread(a.get(), H5T_NATIVE_DOUBLE, v.data()) < 0)
      fail(key + " attribute '" + name + "'", "cannot read");
    return v;
  }

 private:
  std::string path_;
  H5 file_;
};

// "row 3, [1]" of a rows x cols array, flat index k.
std::string at(size_t k, size_t cols) {
  return cols > 1 ? fmt::format("row {}, [{}]", k / cols, k % cols) : fmt::format("row {}", k);
}

std::string dims_text(const std::vector<hsize_t>& d) {
  std::string s = "(";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + (d.size() == 1 ? ",)" : ")");
}

}  // namespace

json export_minari(const Demonstrations& d, const std::string& dir, bool force) {
  const auto start = Clock::now();
  const int T = d.episode_steps, od = d.obs_dim, ad = d.act_dim;
  const bool dart = d.action_noise > 0;
  for (size_t i = 0; i < d.episodes.size(); ++i) {
    const DemoEpisode& e = d.episodes[i];
    if (e.final_observation.empty())
      throw Error(fmt::format("demonstrations of {}: episode {} has no final observation (entry "
                              "'final_observations'); Minari episodes hold episode_steps + 1 observations. Record the "
                              "file again with this ml3 (ml3 demos stores it since the Minari export)",
                              d.env, i));
    if (dart && e.executed_actions.empty())
      throw Error(fmt::format("demonstrations of {}: episode {} of this action-noise (DART) recording has no executed "
                              "actions (entry 'executed_actions'); Minari's actions must be the executed ones. Record "
                              "the file again with this ml3",
                              d.env, i));
  }
  if (fs::exists(dir) && !force) throw Error(dir + ": already exists; pass --force to replace it");
  quiet_hdf5();
  const fs::path final_dir(dir);
  const fs::path tmp = final_dir.string() + ".tmp." + std::to_string(getpid());
  fs::remove_all(tmp);
  fs::create_directories(tmp / "data");
  try {
    Writer w((tmp / "data" / "main_data.hdf5").string());
    std::vector<float> obs((T + 1) * od);
    std::vector<int8_t> terminations(T, 0), truncations(T, 0);
    truncations[T - 1] = 1;  // our episodes end at the time limit
    for (size_t i = 0; i < d.episodes.size(); ++i) {
      const DemoEpisode& e = d.episodes[i];
      H5 g = w.group(w.file(), fmt::format("episode_{}", i));
      w.attr_i64(g.get(), "id", static_cast<int64_t>(i));
      w.attr_i64(g.get(), "total_steps", T);
      std::vector<double> goal(e.goal.begin(), e.goal.end());
      w.attr_f64(g.get(), "options/goal", goal);
      w.attr_f64(g.get(), "ml3_final_distance", {e.final_distance}, true);
      w.attr_i64(g.get(), "ml3_success", e.success ? 1 : 0);
      std::copy(e.observations.begin(), e.observations.end(), obs.begin());
      std::copy(e.final_observation.begin(), e.final_observation.end(), obs.begin() + int64_t{T} * od);
      w.floats(g.get(), "observations", {hsize_t(T + 1), hsize_t(od)}, obs.data());
      w.floats(g.get(), "actions", {hsize_t(T), hsize_t(ad)}, dart ? e.executed_actions.data() : e.actions.data());
      if (dart) w.floats(g.get(), "expert_actions", {hsize_t(T), hsize_t(ad)}, e.actions.data());
      w.floats(g.get(), "rewards", {hsize_t(T)}, e.rewards.data());
      w.bools(g.get(), "terminations", terminations);
      w.bools(g.get(), "truncations", truncations);
    }
    w.close();
    const int64_t n = static_cast<int64_t>(d.episodes.size());
    const json meta = {{"dataset_id", final_dir.filename().string()},
                       {"total_episodes", n},
                       {"total_steps", n * T},
                       {"data_format", "hdf5"},
                       {"minari_version", kMinariVersion},
                       {"observation_space", box_json(od, {}, {})},
                       {"action_space", box_json(ad, d.act_low, d.act_high)},
                       {"algorithm_name", dart ? "ml3 scripted expert with action noise (DART)" : "ml3 scripted expert"},
                       {"ml3", {{"env", d.env},
                                {"goal_dim", d.goal_dim},
                                {"split", split_name(d.split)},
                                {"seed", d.seed},
                                {"action_noise", d.action_noise},
                                {"outcomes_known", d.outcomes_known},
                                {"env_options", d.env_options}}}};
    write_file_atomic((tmp / "data" / "metadata.json").string(), meta.dump(2) + "\n");
    if (fs::exists(final_dir)) fs::remove_all(final_dir);
    fs::rename(tmp, final_dir);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return {{"dir", dir},
          {"episodes", d.episodes.size()},
          {"steps", static_cast<int64_t>(d.episodes.size()) * T},
          {"bytes", fs::file_size(final_dir / "data" / "main_data.hdf5")},
          {"seconds", seconds}};
}

Demonstrations import_minari(const std::string& dir, const EnvSpec& spec,
                             const std::map<std::string, std::string>& env_options, double* seconds) {
  const auto start = Clock::now();
  quiet_hdf5();
  fs::path data = fs::path(dir) / "data";
  if (!fs::exists(data / "main_data.hdf5")) data = dir;
  const fs::path main = data / "main_data.hdf5";
  if (!fs::is_directory(dir)) throw Error(dir + ": not a folder (expected a Minari dataset folder)");
  if (!fs::exists(main))
    throw Error(fmt::format("{}: no main_data.hdf5 (expected {} or {}: a Minari dataset in HDF5 format)", dir,
                            (fs::path(dir) / "data" / "main_data.hdf5").string(), (fs::path(dir) / "main_data.hdf5").string()));
  // metadata.json is optional; ml3's own key restores what .demos files carry.
  json meta = json::object();
  if (fs::exists(data / "metadata.json")) {
    std::ifstream in(data / "metadata.json");
    try {
      meta = json::parse(in);
    } catch (const json::exception& e) {
      throw Error(fmt::format("{}: not valid JSON ({})", (data / "metadata.json").string(), e.what()));
    }
  }
  const json ml3 = meta.is_object() && meta.contains("ml3") && meta["ml3"].is_object() ? meta["ml3"] : json::object();
  if (ml3.contains("env") && ml3["env"] != spec.name)
    throw Error(fmt::format("{}: key 'ml3.env': a dataset exported from '{}' demonstrations, imported as '{}'",
                            (data / "metadata.json").string(),
                            ml3["env"].is_string() ? ml3["env"].get<std::string>() : ml3["env"].dump(), spec.name));

  Reader r(main.string());
  // Episodes episode_0, episode_1, ... and nothing else at the root.
  size_t n = 0;
  while (r.has(r.file(), fmt::format("episode_{}", n))) ++n;
  H5G_info_t root;
  if (H5Gget_info(r.file(), &root) < 0) r.fail("/", "cannot read the root group");
  if (n == 0) r.fail("/", "no episode groups (expected episode_0, episode_1, ...)");
  if (root.nlinks != n)
    r.fail("/", fmt::format("holds {} objects, but the consecutive episode groups episode_0 .. episode_{} are {}; "
                            "expected only those",
                            root.nlinks, n - 1, n));

  Demonstrations d;
  d.env = spec.name;
  d.obs_dim = spec.obs_dim, d.act_dim = spec.act_dim, d.goal_dim = spec.goal_dim;
  d.act_low = spec.act_low, d.act_high = spec.act_high;
  d.env_options = env_options;
  if (ml3.contains("split") && ml3["split"].is_string()) d.split = parse_split(ml3["split"].get<std::string>());
  if (ml3.contains("seed") && ml3["seed"].is_number_unsigned()) d.seed = ml3["seed"].get<uint64_t>();
  if (ml3.contains("action_noise") && ml3["action_noise"].is_number()) d.action_noise = ml3["action_noise"].get<double>();
  if (ml3.contains("env_options") && ml3["env_options"].is_object())
    for (const auto& [k, v] : ml3["env_options"].items())
      if (v.is_string()) d.env_options[k] = v.get<std::string>();
  d.episodes.resize(n);
  const size_t od = spec.obs_dim, ad = spec.act_dim;
  const std::string obs_expected = fmt::format("steps + 1 rows of obs_dim = {} values ({})", od, spec.name);
  const std::string act_expected = fmt::format("steps rows of act_dim = {} values ({})", ad, spec.name);
  for (size_t i = 0; i < n; ++i) {
    const std::string ep = fmt::format("episode_{}", i);
    H5 g = r.group(ep);
    const Array act = r.floats(g.get(), ep, "actions", act_expected.c_str());
    if (act.dims.size() != 2 || act.dims[1] != ad)
      r.fail(ep + "/actions", fmt::format("has shape {}, expected (steps, {}): {} has {} action values", dims_text(act.dims),
                                          ad, spec.name, ad));
    const size_t T = act.dims[0];
    if (T == 0) r.fail(ep + "/actions", "has no rows (expected at least one step)");
    const Array obs = r.floats(g.get(), ep, "observations", obs_expected.c_str());
    if (obs.dims.size() != 2 || obs.dims[1] != od)
      r.fail(ep + "/observations", fmt::format("has shape {}, expected ({}, {}): {} has {} observation values",
                                               dims_text(obs.dims), T + 1, od, spec.name, od));
    if (obs.dims[0] != T + 1)
      r.fail(ep + "/observations", fmt::format("has {} rows, expected {} (actions has {} rows; Minari stores the reset "
                                               "observation too, so steps + 1)",
                                               obs.dims[0], T + 1, T));
    auto steps_of = [&](const char* name) {
      const Array a = r.floats(g.get(), ep, name, "one value per step");
      const bool ok = (a.dims.size() == 1 && a.dims[0] == T) || (a.dims.size() == 2 && a.dims[0] == T && a.dims[1] == 1);
      if (!ok)
        r.fail(ep + "/" + name, fmt::format("has shape {}, expected ({},) like actions (one value per step)",
                                            dims_text(a.dims), T));
      return a;
    };
    const Array rew = steps_of("rewards");
    steps_of("terminations");
    steps_of("truncations");
    if (i == 0) d.episode_steps = static_cast<int>(T);
    if (T != static_cast<size_t>(d.episode_steps))
      r.fail(ep, fmt::format("has {} steps, episode_0 has {}; a .demos file holds episodes of one length", T,
                             d.episode_steps));
    // DART datasets: the labels in expert_actions, the executed actions in actions.
    Array labels;
    if (r.has(g.get(), "expert_actions")) {
      labels = r.floats(g.get(), ep, "expert_actions", act_expected.c_str());
      if (labels.dims != act.dims)
        r.fail(ep + "/expert_actions", fmt::format("has shape {}, expected {} like actions", dims_text(labels.dims),
                                                   dims_text(act.dims)));
    }
    auto finite = [&](const Array& a, const std::string& name, size_t cols) {
      for (size_t k = 0; k < a.values.size(); ++k)
        if (!std::isfinite(a.values[k]))
          r.fail(ep + "/" + name, fmt::format("{} is {}; expected finite values", at(k, cols), a.values[k]));
    };
    auto in_bounds = [&](const Array& a, const std::string& name) {
      for (size_t k = 0; k < a.values.size(); ++k) {
        const size_t j = k % ad;
        const double lo = spec.act_low[j], hi = spec.act_high[j], v = a.values[k];
        if (v < lo - 1e-6 * std::max(1.0, std::abs(lo)) || v > hi + 1e-6 * std::max(1.0, std::abs(hi)))
          r.fail(ep + "/" + name, fmt::format("{} is {}, outside {}'s action bounds [{}, {}]", at(k, ad), v, spec.name, lo, hi));
      }
    };
    finite(obs, "observations", od);
    finite(act, "actions", ad);
    finite(rew, "rewards", 1);
    in_bounds(act, "actions");
    if (!labels.values.empty()) finite(labels, "expert_actions", ad), in_bounds(labels, "expert_actions");

    DemoEpisode& e = d.episodes[i];
    const std::vector<double> goal = r.attr(g.get(), ep, "options/goal");
    if (goal.size() != static_cast<size_t>(spec.goal_dim))
      r.fail(ep, fmt::format("attribute 'options/goal' {}, expected goal_dim = {} numbers: the episode's goal (the "
                             "Gymnasium reset option 'goal')",
                             goal.empty() ? std::string("is missing") : fmt::format("has {} values", goal.size()),
                             spec.goal_dim));
    for (double v : goal)
      if (!std::isfinite(v)) r.fail(ep, fmt::format("attribute 'options/goal' has {}; expected finite values", v));
    e.goal.assign(goal.begin(), goal.end());
    e.observations.assign(obs.values.begin(), obs.values.begin() + T * od);
    e.final_observation.assign(obs.values.begin() + T * od, obs.values.end());
    if (labels.values.empty()) {
      e.actions = act.values;
    } else {
      e.actions = labels.values;
      e.executed_actions = act.values;
    }
    e.rewards = rew.values;
    const std::vector<double> dist = r.attr(g.get(), ep, "ml3_final_distance");
    const std::vector<double> success = r.attr(g.get(), ep, "ml3_success");
    if (dist.size() == 1 && success.size() == 1 && std::isfinite(dist[0]) && dist[0] >= 0) {
      e.final_distance = static_cast<float>(dist[0]);
      e.success = success[0] != 0;
    } else {
      d.outcomes_known = false;
    }
  }
  if (!d.outcomes_known)
    for (DemoEpisode& e : d.episodes) e.final_distance = 0, e.success = false;
  if (seconds) *seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return d;
}

}  // namespace ml3
