#pragma once
// Typed, validated configuration: a Schema declares every key (dotted path,
// type, default, bounds, doc); a Config holds resolved values loaded from YAML
// files and `key=value` overrides. Unknown keys, wrong types and out-of-range
// values raise ml3::Error naming the source, the key and what was expected.
#include <limits>
#include <map>
#include <string>
#include <vector>

namespace ml3 {

enum class ParamType { Int, Double, Bool, String, IntList };

struct ParamDef {
  std::string key;
  ParamType type = ParamType::Double;
  std::string default_value;
  std::string doc;
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  bool min_exclusive = false;
  std::vector<std::string> choices;  // allowed values of a String (empty: any)
  std::string expectation() const;  // e.g. "a number > 0"
};

class Schema {
 public:
  Schema& add_int(const std::string& key, long value, const std::string& doc, double min = 1,
                  double max = std::numeric_limits<double>::infinity());
  Schema& add_double(const std::string& key, double value, const std::string& doc,
                     double min = -std::numeric_limits<double>::infinity(),
                     double max = std::numeric_limits<double>::infinity(),
                     bool min_exclusive = false);
  Schema& add_bool(const std::string& key, bool value, const std::string& doc);
  Schema& add_string(const std::string& key, const std::string& value, const std::string& doc,
                     const std::vector<std::string>& choices = {});
  Schema& add_int_list(const std::string& key, const std::vector<int>& value,
                       const std::string& doc, double min = 1);
  // Adds every parameter of `other`, with `prefix` prepended to its keys.
  Schema& include(const std::string& prefix, const Schema& other);
  // Changes the default of an existing key (validated).
  Schema& set_default(const std::string& key, const std::string& value);

  const ParamDef* find(const std::string& key) const;
  // The known key closest to `key` (edit distance), for "did you mean".
  std::string closest(const std::string& key) const;
  const std::vector<ParamDef>& params() const { return params_; }
  Schema& add(ParamDef def);

 private:
  std::vector<ParamDef> params_;
};

class Config {
 public:
  Config() = default;
  explicit Config(Schema schema);

  // Validates and stores one value; `source` names where it came from
  // (a file name and line, or "command line").
  void set(const std::string& key, const std::string& value, const std::string& source);
  // With `only_prefix`, keys outside it are ignored (e.g. read just the
  // "env." section of a training config).
  void load_yaml_file(const std::string& path, const std::string& only_prefix = "");
  void load_yaml_string(const std::string& text, const std::string& source,
                        const std::string& only_prefix = "");
  // Applies `key=value` overrides (Hydra style).
  void apply_overrides(const std::vector<std::string>& overrides);

  long get_int(const std::string& key) const;
  double get_double(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  const std::string& get_string(const std::string& key) const;
  std::vector<int> get_int_list(const std::string& key) const;
  bool has(const std::string& key) const { return schema_.find(key) != nullptr; }

  // The keys under `prefix` ("env."), with the prefix removed.
  Config subset(const std::string& prefix) const;
  // Nested YAML of every resolved value (the run folder's config copy).
  std::string to_yaml() const;
  const Schema& schema() const { return schema_; }
  const std::map<std::string, std::string>& values() const { return values_; }

 private:
  const ParamDef& def(const std::string& key, ParamType type) const;
  Schema schema_;
  std::map<std::string, std::string> values_;
};

// Reads one scalar (dotted key) from a YAML file and overrides without a
// schema; used to learn e.g. `env.name` before the full schema is known.
// Returns `fallback` when the key is absent.
std::string peek_config_value(const std::string& yaml_path, const std::vector<std::string>& overrides,
                              const std::string& key, const std::string& fallback);

// The distinct names one level below `prefix` ("methods.") among the keys of
// a YAML file and overrides, in order of appearance (e.g. the methods of an
// `ml3 compare` config, whose keys depend on them).
std::vector<std::string> peek_config_children(const std::string& yaml_path, const std::vector<std::string>& overrides,
                                              const std::string& prefix);

// Markdown table of a schema (README's config reference).
std::string schema_markdown(const Schema& schema);

// ---- typed config sections ------------------------------------------------------
// One declaration gives a setting its type, default, range and help. A section
// is a plain struct whose members hold the defaults and whose fields() lists
// each member once:
//
//   struct OptimSection {
//     double lr = 3e-4;
//     bool anneal_lr = true;
//     template <class F> void fields(F& f) {
//       f("lr", lr, "policy Adam learning rate", Bounds::in(0, 10, true));
//       f("anneal_lr", anneal_lr, "decay the learning rate linearly to 0");
//     }
//   };
//   declare(schema, "optim.", OptimSection{});          // keys, defaults, docs, ranges
//   const auto o = read<OptimSection>(config, "optim."); // typed values
//
// The schema, `--print-schema`, the README's key table and the "did you mean"
// messages all come from that one list.
struct Bounds {
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  bool min_exclusive = false;
  static Bounds any() { return {}; }
  static Bounds at_least(double lo) { return {lo, std::numeric_limits<double>::infinity(), false}; }
  static Bounds above(double lo) { return {lo, std::numeric_limits<double>::infinity(), true}; }
  static Bounds in(double lo, double hi, bool lo_exclusive = false) { return {lo, hi, lo_exclusive}; }
};
struct Choices {
  std::vector<std::string> values;
};

// Adds a section's fields to a schema (defaults = the struct's values).
class SchemaFields {
 public:
  SchemaFields(Schema& s, std::string prefix) : s_(s), prefix_(std::move(prefix)) {}
  // Integers are at least 1 unless bounds say otherwise.
  void operator()(const char* key, int& v, const char* doc, Bounds b = Bounds::at_least(1));
  void operator()(const char* key, double& v, const char* doc, Bounds b = Bounds::any());
  void operator()(const char* key, bool& v, const char* doc);
  void operator()(const char* key, std::string& v, const char* doc, Choices c = {});
  void operator()(const char* key, std::vector<int>& v, const char* doc, Bounds b = Bounds::at_least(1));

 private:
  Schema& s_;
  std::string prefix_;
};

// Fills a section's members from a resolved config.
class ReadFields {
 public:
  ReadFields(const Config& c, std::string prefix) : c_(c), prefix_(std::move(prefix)) {}
  template <class... Rest>
  void operator()(const char* key, int& v, const char*, Rest...) { v = static_cast<int>(c_.get_int(prefix_ + key)); }
  template <class... Rest>
  void operator()(const char* key, double& v, const char*, Rest...) { v = c_.get_double(prefix_ + key); }
  void operator()(const char* key, bool& v, const char*) { v = c_.get_bool(prefix_ + key); }
  template <class... Rest>
  void operator()(const char* key, std::string& v, const char*, Rest...) { v = c_.get_string(prefix_ + key); }
  template <class... Rest>
  void operator()(const char* key, std::vector<int>& v, const char*, Rest...) { v = c_.get_int_list(prefix_ + key); }

 private:
  const Config& c_;
  std::string prefix_;
};

template <class Section>
void declare(Schema& s, const std::string& prefix, Section defaults = Section{}) {
  SchemaFields f(s, prefix);
  defaults.fields(f);
}
template <class Section>
Section read(const Config& c, const std::string& prefix) {
  Section out;
  ReadFields f(c, prefix);
  out.fields(f);
  return out;
}

// seed, threads, torch_threads: every command's top-level run settings.
struct RunSection {
  int seed = 1;
  int threads = 2;
  int torch_threads = 1;
  template <class F>
  void fields(F& f) {
    f("seed", seed, "seed of everything random (init, goals, noise, shuffling)", Bounds::at_least(0));
    f("threads", threads, "simulation threads (batched environment)", Bounds::in(1, 256));
    f("torch_threads", torch_threads, "LibTorch intra-op threads (small networks: 1 is fastest)", Bounds::in(1, 256));
  }
};

}  // namespace ml3
