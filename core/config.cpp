#include "core/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace ml3 {
namespace {

const char* type_name(ParamType t) {
  switch (t) {
    case ParamType::Int: return "an integer";
    case ParamType::Double: return "a number";
    case ParamType::Bool: return "true or false";
    case ParamType::String: return "a string";
    case ParamType::IntList: return "a list of integers";
  }
  return "?";
}

std::string fmt_bound(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

bool parse_long(const std::string& s, long* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(s.c_str(), &end, 10);
  if (errno != 0 || *end != '\0') return false;
  *out = v;
  return true;
}

bool parse_double(const std::string& s, double* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(s.c_str(), &end);
  if (errno != 0 || *end != '\0' || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

bool parse_bool(const std::string& s, bool* out) {
  if (s == "true" || s == "True" || s == "1" || s == "yes") return *out = true, true;
  if (s == "false" || s == "False" || s == "0" || s == "no") return *out = false, true;
  return false;
}

std::vector<std::string> split_list(const std::string& s) {
  std::string t = s;
  t.erase(std::remove_if(t.begin(), t.end(), [](char c) { return c == '[' || c == ']' || c == ' '; }),
          t.end());
  std::vector<std::string> out;
  if (t.empty()) return out;
  std::stringstream ss(t);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(item);
  return out;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

bool in_range(const ParamDef& d, double v) {
  if (d.min_exclusive ? !(v > d.min) : !(v >= d.min)) return false;
  return v <= d.max;
}

// Returns the canonical string of a valid value, or an empty optional-like
// flag through `ok`.
std::string canonical(const ParamDef& d, const std::string& value, bool* ok) {
  *ok = true;
  switch (d.type) {
    case ParamType::Int: {
      long v;
      if (!parse_long(value, &v) || !in_range(d, static_cast<double>(v))) break;
      return std::to_string(v);
    }
    case ParamType::Double: {
      double v;
      if (!parse_double(value, &v) || !in_range(d, v)) break;
      return value;
    }
    case ParamType::Bool: {
      bool v;
      if (!parse_bool(value, &v)) break;
      return v ? "true" : "false";
    }
    case ParamType::String:
      if (!d.choices.empty() &&
          std::find(d.choices.begin(), d.choices.end(), value) == d.choices.end())
        break;
      return value;
    case ParamType::IntList: {
      std::string out;
      bool good = true;
      for (const auto& item : split_list(value)) {
        long v = 0;
        if (!parse_long(item, &v) || !in_range(d, static_cast<double>(v))) good = false;
        out += (out.empty() ? "" : ",") + std::to_string(v);
      }
      if (!good) break;
      return out;
    }
  }
  *ok = false;
  return {};
}

void flatten(const YAML::Node& node, const std::string& prefix, const std::string& file,
             std::vector<std::pair<std::string, YAML::Node>>* out) {
  if (node.IsMap()) {
    for (const auto& kv : node) {
      const std::string key = kv.first.as<std::string>();
      flatten(kv.second, prefix.empty() ? key : prefix + "." + key, file, out);
    }
  } else {
    out->emplace_back(prefix, node);
  }
}

std::string node_value(const YAML::Node& node) {
  if (node.IsSequence()) {
    std::string s;
    for (const auto& item : node) s += (s.empty() ? "" : ",") + item.as<std::string>();
    return s;
  }
  if (node.IsNull()) return "";
  return node.as<std::string>();
}

YAML::Node parse_yaml(const std::string& text, const std::string& source) {
  try {
    YAML::Node root = YAML::Load(text);
    if (!root.IsNull() && !root.IsMap())
      throw Error(source + ": expected a YAML mapping of keys to values at the top level");
    return root;
  } catch (const YAML::Exception& e) {
    throw Error(source + ":" + std::to_string(e.mark.line + 1) + ": malformed YAML: " + e.msg);
  }
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open config file");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::string ParamDef::expectation() const {
  std::string s = type_name(type);
  if (type == ParamType::Int || type == ParamType::Double || type == ParamType::IntList) {
    const bool has_min = std::isfinite(min), has_max = std::isfinite(max);
    if (has_min && has_max)
      s += std::string(" in ") + (min_exclusive ? "(" : "[") + fmt_bound(min) + ", " + fmt_bound(max) + "]";
    else if (has_min)
      s += std::string(min_exclusive ? " > " : " >= ") + fmt_bound(min);
    else if (has_max)
      s += " <= " + fmt_bound(max);
  }
  if (!choices.empty()) {
    s += ", one of:";
    for (const auto& c : choices) s += " " + c;
  }
  return s;
}

Schema& Schema::add(ParamDef def) {
  if (find(def.key)) throw Error("internal: config key '" + def.key + "' declared twice");
  bool ok;
  def.default_value = canonical(def, def.default_value, &ok);
  if (!ok) throw Error("internal: bad default for config key '" + def.key + "'");
  params_.push_back(std::move(def));
  return *this;
}

Schema& Schema::add_int(const std::string& key, long value, const std::string& doc, double min,
                        double max) {
  ParamDef d;
  d.key = key, d.type = ParamType::Int, d.default_value = std::to_string(value), d.doc = doc;
  d.min = min, d.max = max;
  return add(d);
}

Schema& Schema::add_double(const std::string& key, double value, const std::string& doc,
                           double min, double max, bool min_exclusive) {
  ParamDef d;
  // Shortest text that reads back as the same double.
  std::string text;
  for (int precision = 6; precision <= 17; ++precision) {
    std::ostringstream os;
    os.precision(precision);
    os << value;
    text = os.str();
    if (std::strtod(text.c_str(), nullptr) == value) break;
  }
  d.key = key, d.type = ParamType::Double, d.default_value = text, d.doc = doc;
  d.min = min, d.max = max, d.min_exclusive = min_exclusive;
  return add(d);
}

Schema& Schema::add_bool(const std::string& key, bool value, const std::string& doc) {
  ParamDef d;
  d.key = key, d.type = ParamType::Bool, d.default_value = value ? "true" : "false", d.doc = doc;
  return add(d);
}

Schema& Schema::add_string(const std::string& key, const std::string& value,
                           const std::string& doc, const std::vector<std::string>& choices) {
  ParamDef d;
  d.key = key, d.type = ParamType::String, d.default_value = value, d.doc = doc;
  d.choices = choices;
  return add(d);
}

Schema& Schema::add_int_list(const std::string& key, const std::vector<int>& value,
                             const std::string& doc, double min) {
  ParamDef d;
  std::string s;
  for (int v : value) s += (s.empty() ? "" : ",") + std::to_string(v);
  d.key = key, d.type = ParamType::IntList, d.default_value = s, d.doc = doc, d.min = min;
  return add(d);
}

Schema& Schema::include(const std::string& prefix, const Schema& other) {
  for (ParamDef d : other.params_) {
    d.key = prefix + d.key;
    add(d);
  }
  return *this;
}

Schema& Schema::set_default(const std::string& key, const std::string& value) {
  for (auto& d : params_) {
    if (d.key != key) continue;
    bool ok;
    std::string v = canonical(d, value, &ok);
    if (!ok) throw Error("internal: bad default '" + value + "' for config key '" + key + "'");
    d.default_value = v;
    return *this;
  }
  throw Error("internal: set_default of unknown config key '" + key + "'");
}

const ParamDef* Schema::find(const std::string& key) const {
  for (const auto& d : params_)
    if (d.key == key) return &d;
  return nullptr;
}

std::string Schema::closest(const std::string& key) const {
  std::string best;
  size_t best_d = static_cast<size_t>(-1);
  for (const auto& d : params_) {
    // Compare against the full key and its last component, so "lr" finds "ppo.lr".
    const auto dot = d.key.rfind('.');
    size_t dist = edit_distance(key, d.key);
    if (dot != std::string::npos) dist = std::min(dist, edit_distance(key, d.key.substr(dot + 1)) + 1);
    if (dist < best_d) best_d = dist, best = d.key;
  }
  return best;
}

Config::Config(Schema schema) : schema_(std::move(schema)) {
  for (const auto& d : schema_.params()) values_[d.key] = d.default_value;
}

void Config::set(const std::string& key, const std::string& value, const std::string& source) {
  const ParamDef* d = schema_.find(key);
  if (!d) {
    std::string msg = source + ": unknown config key '" + key + "'";
    const std::string near = schema_.closest(key);
    if (!near.empty()) msg += " (did you mean '" + near + "'?)";
    throw Error(msg);
  }
  bool ok;
  std::string v = canonical(*d, value, &ok);
  if (!ok)
    throw Error(source + ": key '" + key + "': expected " + d->expectation() + ", got '" + value + "'");
  values_[key] = v;
}

void Config::load_yaml_string(const std::string& text, const std::string& source,
                              const std::string& only_prefix) {
  YAML::Node root = parse_yaml(text, source);
  std::vector<std::pair<std::string, YAML::Node>> items;
  flatten(root, "", source, &items);
  for (const auto& [key, node] : items) {
    if (key.compare(0, only_prefix.size(), only_prefix) != 0) continue;
    const std::string where = source + ":" + std::to_string(node.Mark().line + 1);
    const ParamDef* d = schema_.find(key);
    if (d && node.IsSequence() && d->type != ParamType::IntList)
      throw Error(where + ": key '" + key + "': expected " + d->expectation() + ", got a list");
    if (d && d->type == ParamType::IntList && !node.IsSequence() && !node.IsNull())
      throw Error(where + ": key '" + key + "': expected " + d->expectation() + " like [64, 64]");
    set(key, node_value(node), where);
  }
}

void Config::load_yaml_file(const std::string& path, const std::string& only_prefix) {
  load_yaml_string(read_file(path), path, only_prefix);
}

void Config::apply_overrides(const std::vector<std::string>& overrides) {
  for (const auto& kv : overrides) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0)
      throw Error("command line: override '" + kv + "' is not of the form key=value");
    set(kv.substr(0, eq), kv.substr(eq + 1), "command line override '" + kv + "'");
  }
}

const ParamDef& Config::def(const std::string& key, ParamType type) const {
  const ParamDef* d = schema_.find(key);
  if (!d) throw Error("internal: config key '" + key + "' is not declared");
  if (d->type != type) throw Error("internal: config key '" + key + "' read with the wrong type");
  return *d;
}

long Config::get_int(const std::string& key) const {
  def(key, ParamType::Int);
  return std::stol(values_.at(key));
}
double Config::get_double(const std::string& key) const {
  def(key, ParamType::Double);
  return std::strtod(values_.at(key).c_str(), nullptr);
}
bool Config::get_bool(const std::string& key) const {
  def(key, ParamType::Bool);
  return values_.at(key) == "true";
}
const std::string& Config::get_string(const std::string& key) const {
  def(key, ParamType::String);
  return values_.at(key);
}
std::vector<int> Config::get_int_list(const std::string& key) const {
  def(key, ParamType::IntList);
  std::vector<int> out;
  for (const auto& s : split_list(values_.at(key))) out.push_back(std::stoi(s));
  return out;
}

Config Config::subset(const std::string& prefix) const {
  Schema schema;
  for (const auto& d : schema_.params()) {
    if (d.key.compare(0, prefix.size(), prefix) != 0) continue;
    ParamDef sub = d;
    sub.key = d.key.substr(prefix.size());
    sub.default_value = values_.at(d.key);  // carry the resolved value
    schema.add(sub);
  }
  return Config(std::move(schema));
}

namespace {
// Key tree for emitting nested YAML in schema order.
struct KeyTree {
  std::vector<std::string> order;
  std::map<std::string, KeyTree> children;
  const ParamDef* leaf = nullptr;
};

void emit_tree(YAML::Emitter& out, const KeyTree& tree, const std::map<std::string, std::string>& values) {
  out << YAML::BeginMap;
  for (const auto& name : tree.order) {
    const KeyTree& child = tree.children.at(name);
    out << YAML::Key << name << YAML::Value;
    if (!child.leaf) {
      emit_tree(out, child, values);
      continue;
    }
    const std::string& v = values.at(child.leaf->key);
    switch (child.leaf->type) {
      case ParamType::Int: out << std::stol(v); break;
      case ParamType::Double: out << v; break;  // the text as given: round-trips exactly
      case ParamType::Bool: out << (v == "true"); break;
      case ParamType::String: out << v; break;
      case ParamType::IntList:
        out << YAML::Flow << YAML::BeginSeq;
        for (const auto& item : split_list(v)) out << std::stoi(item);
        out << YAML::EndSeq;
        break;
    }
  }
  out << YAML::EndMap;
}
}  // namespace

std::string Config::to_yaml() const {
  KeyTree root;
  for (const auto& d : schema_.params()) {
    KeyTree* node = &root;
    std::stringstream ss(d.key);
    std::string part;
    while (std::getline(ss, part, '.')) {
      if (!node->children.count(part)) node->order.push_back(part);
      node = &node->children[part];
    }
    node->leaf = &d;
  }
  YAML::Emitter out;
  out.SetDoublePrecision(17);
  emit_tree(out, root, values_);
  return std::string(out.c_str()) + "\n";
}

std::string peek_config_value(const std::string& yaml_path, const std::vector<std::string>& overrides,
                              const std::string& key, const std::string& fallback) {
  std::string value = fallback;
  if (!yaml_path.empty()) {
    YAML::Node root = parse_yaml(read_file(yaml_path), yaml_path);
    std::vector<std::pair<std::string, YAML::Node>> items;
    flatten(root, "", yaml_path, &items);
    for (const auto& [k, node] : items)
      if (k == key && node.IsScalar()) value = node.as<std::string>();
  }
  for (const auto& kv : overrides) {
    const auto eq = kv.find('=');
    if (eq != std::string::npos && kv.substr(0, eq) == key) value = kv.substr(eq + 1);
  }
  return value;
}

std::vector<std::string> peek_config_children(const std::string& yaml_path, const std::vector<std::string>& overrides,
                                              const std::string& prefix) {
  std::vector<std::string> keys, names;
  if (!yaml_path.empty()) {
    YAML::Node root = parse_yaml(read_file(yaml_path), yaml_path);
    std::vector<std::pair<std::string, YAML::Node>> items;
    flatten(root, "", yaml_path, &items);
    for (const auto& item : items) keys.push_back(item.first);
  }
  for (const auto& kv : overrides) keys.push_back(kv.substr(0, kv.find('=')));
  for (const auto& k : keys) {
    if (k.rfind(prefix, 0) != 0) continue;
    const std::string rest = k.substr(prefix.size());
    const std::string name = rest.substr(0, rest.find('.'));
    if (!name.empty() && std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  return names;
}

std::string schema_markdown(const Schema& schema) {
  std::string out = "| key | type | default | meaning |\n| --- | --- | --- | --- |\n";
  for (const auto& d : schema.params())
    out += "| `" + d.key + "` | " + d.expectation() + " | `" + d.default_value + "` | " + d.doc + " |\n";
  return out;
}

// ---- typed sections -------------------------------------------------------------
void SchemaFields::operator()(const char* key, int& v, const char* doc, Bounds b) {
  s_.add_int(prefix_ + key, v, doc, b.min, b.max);
}
void SchemaFields::operator()(const char* key, double& v, const char* doc, Bounds b) {
  s_.add_double(prefix_ + key, v, doc, b.min, b.max, b.min_exclusive);
}
void SchemaFields::operator()(const char* key, bool& v, const char* doc) { s_.add_bool(prefix_ + key, v, doc); }
void SchemaFields::operator()(const char* key, std::string& v, const char* doc, Choices c) {
  s_.add_string(prefix_ + key, v, doc, c.values);
}
void SchemaFields::operator()(const char* key, std::vector<int>& v, const char* doc, Bounds b) {
  s_.add_int_list(prefix_ + key, v, doc, b.min);
}

}  // namespace ml3
