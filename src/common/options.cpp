#include "common/options.h"

#include <limits>

#include <yaml-cpp/yaml.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <nlohmann/json.hpp>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>

#include "common/check.h"

namespace refract {
namespace {

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  size_t e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

bool parse_bool(const std::string& v, bool* out) {
  std::string s = v;
  std::transform(s.begin(), s.end(), s.begin(), ::tolower);
  if (s == "true" || s == "1" || s == "yes" || s == "on") return *out = true, true;
  if (s == "false" || s == "0" || s == "no" || s == "off") return *out = false, true;
  return false;
}

bool parse_int64(const std::string& v, int64_t* out) {
  try {
    size_t pos = 0;
    long long x = std::stoll(v, &pos);
    if (pos != v.size()) {
      // Allow integral floats written as 1e3 or 10.0.
      double d = std::stod(v, &pos);
      if (pos != v.size() || d != static_cast<double>(static_cast<long long>(d))) return false;
      x = static_cast<long long>(d);
    }
    *out = x;
    return true;
  } catch (...) {
    return false;
  }
}

bool parse_double(const std::string& v, double* out) {
  try {
    size_t pos = 0;
    *out = std::stod(v, &pos);
    return pos == v.size();
  } catch (...) {
    return false;
  }
}

// "a,b" or "[a, b]" or several flag values -> items.
std::vector<std::string> split_list(const std::vector<std::string>& raw) {
  std::vector<std::string> items;
  for (std::string s : raw) {
    s = trim(s);
    if (!s.empty() && s.front() == '[' && s.back() == ']') s = s.substr(1, s.size() - 2);
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ',')) {
      item = trim(item);
      if (item.size() >= 2 && (item.front() == '"' || item.front() == '\'') &&
          item.back() == item.front())
        item = item.substr(1, item.size() - 2);
      if (!item.empty()) items.push_back(item);
    }
  }
  return items;
}

const char* type_name(const Options::Field& f) {
  struct V {
    const char* operator()(bool*) { return "a boolean (true/false)"; }
    const char* operator()(int*) { return "an integer"; }
    const char* operator()(int64_t*) { return "an integer"; }
    const char* operator()(double*) { return "a number"; }
    const char* operator()(float*) { return "a number"; }
    const char* operator()(std::string*) { return "a string"; }
    const char* operator()(std::vector<std::string>*) { return "a list of strings"; }
    const char* operator()(std::vector<int64_t>*) { return "a list of integers"; }
    const char* operator()(std::vector<double>*) { return "a list of numbers"; }
    const char* operator()(nlohmann::json*) {
      return "a mapping (YAML mapping; flag: JSON '{..}' or OUTER.INNER=VALUE)";
    }
  };
  return std::visit(V{}, f);
}

// A plain (unquoted) scalar typed as YAML 1.2's core schema reads it.
nlohmann::json plain_scalar_to_json(const std::string& s) {
  if (s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  static const std::regex kInt(R"([-+]?[0-9]+)");
  static const std::regex kFloat(R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?)");
  if (std::regex_match(s, kInt)) {
    int64_t v;
    if (parse_int64(s, &v)) return v;
  }
  if (std::regex_match(s, kFloat)) {
    double v;
    if (parse_double(s, &v)) return v;
  }
  return s;
}

nlohmann::json yaml_scalar_to_json(const YAML::Node& n) {
  if (n.Tag() == "!") return n.Scalar();  // quoted: a string
  return plain_scalar_to_json(n.Scalar());
}

nlohmann::json yaml_to_json(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Scalar: return yaml_scalar_to_json(n);
    case YAML::NodeType::Sequence: {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& it : n) out.push_back(yaml_to_json(it));
      return out;
    }
    case YAML::NodeType::Map: {
      nlohmann::json out = nlohmann::json::object();
      for (const auto& kv : n) out[kv.first.as<std::string>()] = yaml_to_json(kv.second);
      return out;
    }
    default: return nullptr;
  }
}

// The inverse of yaml_to_json: strings always quoted so "20" stays a string.
void emit_json(YAML::Emitter& out, const nlohmann::json& j) {
  if (j.is_object()) {
    out << YAML::Flow << YAML::BeginMap;
    for (const auto& [k, v] : j.items()) {
      out << YAML::Key << YAML::DoubleQuoted << k << YAML::Value;
      emit_json(out, v);
    }
    out << YAML::EndMap;
  } else if (j.is_array()) {
    out << YAML::Flow << YAML::BeginSeq;
    for (const auto& v : j) emit_json(out, v);
    out << YAML::EndSeq;
  } else if (j.is_string()) {
    out << YAML::DoubleQuoted << j.get<std::string>();
  } else if (j.is_boolean()) {
    out << (j.get<bool>() ? "true" : "false");
  } else if (j.is_null()) {
    out << YAML::Null;
  } else {
    out << j.dump();  // numbers: JSON's shortest round-trip form (0.1, not 0.10000000000000001)
  }
}

// Objects merge key by key; anything else replaces.
void merge_into(nlohmann::json& dst, const nlohmann::json& src) {
  if (!dst.is_object() || !src.is_object()) {
    dst = src;
    return;
  }
  for (const auto& [k, v] : src.items()) merge_into(dst[k], v);
}

// One flag value of a mapping field: '{...}' (JSON / YAML flow) or OUTER.INNER=VALUE.
bool merge_flag_value(nlohmann::json* p, const std::string& text) {
  const std::string t = trim(text);
  nlohmann::json patch;
  try {
    if (!t.empty() && t.front() == '{') {
      const YAML::Node n = YAML::Load(t);
      if (!n.IsMap()) return false;
      patch = yaml_to_json(n);
    } else {
      const size_t eq = t.find('=');
      if (eq == std::string::npos) return false;
      const std::string path = trim(t.substr(0, eq));
      const size_t dot = path.rfind('.');
      if (dot == std::string::npos || dot == 0 || dot + 1 == path.size()) return false;
      // VALUE is typed like a plain YAML scalar but not parsed as YAML, so a regex such as
      // [0-9]+: .* stays a string; quotes force a string ('20').
      const std::string v = trim(t.substr(eq + 1));
      const bool quoted =
          v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front();
      patch[path.substr(0, dot)][path.substr(dot + 1)] =
          quoted ? nlohmann::json(v.substr(1, v.size() - 2)) : plain_scalar_to_json(v);
    }
  } catch (const YAML::Exception&) {
    return false;
  }
  if (!p->is_object()) *p = nlohmann::json::object();
  merge_into(*p, patch);
  return true;
}

bool is_list_field(const Options::Field& f) {
  return std::holds_alternative<std::vector<std::string>*>(f) ||
         std::holds_alternative<std::vector<int64_t>*>(f) ||
         std::holds_alternative<std::vector<double>*>(f);
}

// Assigns textual items to a field; false when they do not parse as its type.
bool assign(const Options::Field& field, const std::vector<std::string>& items, bool is_list) {
  struct V {
    const std::vector<std::string>& items;
    bool is_list;
    bool one(std::string* s) const {
      if (is_list || items.size() != 1) return false;
      *s = items[0];
      return true;
    }
    bool operator()(bool* p) const {
      std::string s;
      return one(&s) && parse_bool(trim(s), p);
    }
    bool operator()(int* p) const {
      std::string s;
      int64_t v;
      if (!one(&s) || !parse_int64(trim(s), &v)) return false;
      // Out of int's range is a bad value, not a silent truncation.
      if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max()) return false;
      *p = static_cast<int>(v);
      return true;
    }
    bool operator()(int64_t* p) const {
      std::string s;
      return one(&s) && parse_int64(trim(s), p);
    }
    bool operator()(double* p) const {
      std::string s;
      return one(&s) && parse_double(trim(s), p);
    }
    bool operator()(float* p) const {
      std::string s;
      double d;
      if (!one(&s) || !parse_double(trim(s), &d)) return false;
      *p = static_cast<float>(d);
      return true;
    }
    bool operator()(std::string* p) const { return one(p); }
    bool operator()(std::vector<std::string>* p) const {
      *p = is_list ? items : split_list(items);
      return true;
    }
    bool operator()(std::vector<int64_t>* p) const {
      std::vector<int64_t> out;
      for (const auto& s : is_list ? items : split_list(items)) {
        int64_t v;
        if (!parse_int64(trim(s), &v)) return false;
        out.push_back(v);
      }
      *p = out;
      return true;
    }
    bool operator()(std::vector<double>* p) const {
      std::vector<double> out;
      for (const auto& s : is_list ? items : split_list(items)) {
        double v;
        if (!parse_double(trim(s), &v)) return false;
        out.push_back(v);
      }
      *p = out;
      return true;
    }
    bool operator()(nlohmann::json* p) const {
      if (is_list) return false;
      for (const auto& s : items)
        if (!merge_flag_value(p, s)) return false;
      return true;
    }
  };
  return std::visit(V{items, is_list}, field);
}

nlohmann::json value_json(const Options::Field& f) {
  return std::visit([](auto* p) { return nlohmann::json(*p); }, f);
}

// What --help shows after a key's flag: its type or its choice set. Without it CLI11 shows every
// key as `TEXT ...`, since each flag is first read as strings (parse() converts and checks them).
std::string flag_type_text(const Options::Entry& e) {
  if (!e.choices.empty()) {
    std::string set = "{";
    for (size_t i = 0; i < e.choices.size(); ++i) set += (i ? "|" : "") + e.choices[i];
    return set + "}";
  }
  struct V {
    bool is_path;
    std::string operator()(bool*) const { return "BOOL"; }
    std::string operator()(int*) const { return "INT"; }
    std::string operator()(int64_t*) const { return "INT"; }
    std::string operator()(double*) const { return "FLOAT"; }
    std::string operator()(float*) const { return "FLOAT"; }
    std::string operator()(std::string*) const { return is_path ? "PATH" : "TEXT"; }
    std::string operator()(std::vector<std::string>*) const { return "LIST"; }
    std::string operator()(std::vector<int64_t>*) const { return "INT LIST"; }
    std::string operator()(std::vector<double>*) const { return "FLOAT LIST"; }
    std::string operator()(nlohmann::json*) const { return "MAP"; }
  };
  return std::visit(V{e.is_path}, e.field);
}

// A boolean key's flag is registered as --key{true} (bare --key means true); --help shows it
// as --key[=BOOL].
class SettingsFormatter : public CLI::Formatter {
 public:
  std::string make_option_name(const CLI::Option* opt, bool is_positional) const override {
    std::string name = CLI::Formatter::make_option_name(opt, is_positional);
    static const std::string kTail = "{true}";
    if (name.size() > kTail.size() && name.compare(name.size() - kTail.size(), kTail.size(), kTail) == 0)
      name.replace(name.size() - kTail.size(), kTail.size(), "[=BOOL]");
    return name;
  }
};

}  // namespace

Options& Options::add(const std::string& key, Field field, const std::string& help) {
  REFRACT_CHECK(find(key) == nullptr) << "option '" << key << "' declared twice";
  if (auto* j = std::get_if<nlohmann::json*>(&field)) {
    REFRACT_CHECK((*j)->is_object())
        << "option '" << key << "': a mapping field starts as an object";
  }
  Entry e;
  e.key = key;
  e.field = field;
  e.help = help;
  entries_.push_back(std::move(e));
  return *this;
}

Options& Options::choices(std::vector<std::string> allowed) {
  REFRACT_CHECK(!entries_.empty()) << "choices() before add()";
  entries_.back().choices = std::move(allowed);
  return *this;
}

Options& Options::alias(const std::string& other_name) {
  REFRACT_CHECK(!entries_.empty()) << "alias() before add()";
  REFRACT_CHECK(find(other_name) == nullptr)
      << "option alias '" << other_name << "' is already a key or an alias";
  entries_.back().aliases.push_back({other_name, {}, {}, nullptr});
  return *this;
}

Options& Options::path() {
  REFRACT_CHECK(!entries_.empty()) << "path() before add()";
  REFRACT_CHECK(std::holds_alternative<std::string*>(entries_.back().field))
      << "option '" << entries_.back().key << "': path() needs a string key";
  entries_.back().is_path = true;
  return *this;
}

const Options::Entry* Options::find(const std::string& key) const {
  for (const auto& e : entries_) {
    if (e.key == key) return &e;
    for (const auto& a : e.aliases)
      if (a.name == key) return &e;
  }
  return nullptr;
}

Options::Entry* Options::find(const std::string& key) {
  return const_cast<Entry*>(static_cast<const Options*>(this)->find(key));
}

bool Options::has(const std::string& key) const { return find(key) != nullptr; }

void Options::check_choice(const Entry& e, const std::string& where) const {
  if (e.choices.empty()) return;
  const auto* s = std::get_if<std::string*>(&e.field);
  if (!s) return;
  if (std::find(e.choices.begin(), e.choices.end(), **s) != e.choices.end()) return;
  std::string allowed;
  for (const auto& c : e.choices) allowed += (allowed.empty() ? "" : ", ") + c;
  REFRACT_FAIL() << where << ": " << e.key << ": '" << **s << "' is not one of: " << allowed;
}

void Options::set(const std::string& key, const std::string& value, const std::string& where) {
  Entry* e = find(key);
  REFRACT_CHECK(e) << where << ": unknown key '" << key << "'";
  REFRACT_CHECK(assign(e->field, {value}, /*is_list=*/false))
      << where << ": " << key << ": '" << value << "' is not " << type_name(e->field);
  check_choice(*e, where);
}

void Options::load_yaml_string(const std::string& text, const std::string& where) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& ex) {
    REFRACT_FAIL() << where << ": invalid YAML: " << ex.what();
  }
  if (root.IsNull()) return;
  REFRACT_CHECK(root.IsMap()) << where << ": expected a mapping of key: value";
  // Which spelling set each key, to reject a key given under both its name and an alias.
  std::vector<std::pair<const Entry*, std::pair<std::string, int>>> seen;
  for (const auto& kv : root) {
    const std::string key = kv.first.as<std::string>();
    const int line = kv.first.Mark().line + 1;
    const std::string at = where + ":" + std::to_string(line);
    Entry* e = find(key);
    REFRACT_CHECK(e) << at << ": unknown key '" << key << "'";
    for (const auto& [prev, spelling] : seen)
      REFRACT_CHECK(prev != e || spelling.first == key)
          << at << ": '" << key << "' and '" << spelling.first << "' (line " << spelling.second
          << ") are the same key; give one";
    seen.push_back({e, {key, line}});
    const YAML::Node& v = kv.second;
    bool ok = false;
    if (auto* j = std::get_if<nlohmann::json*>(&e->field)) {
      // A mapping replaces the default; flags later merge into it.
      if (v.IsMap()) **j = yaml_to_json(v), ok = true;
      else if (v.IsNull()) **j = nlohmann::json::object(), ok = true;
    } else if (v.IsSequence()) {
      std::vector<std::string> items;
      bool scalars = true;
      for (const auto& it : v) {
        if (!it.IsScalar()) scalars = false;
        else items.push_back(it.as<std::string>());
      }
      ok = scalars && assign(e->field, items, /*is_list=*/true);
    } else if (v.IsScalar()) {
      ok = assign(e->field, {v.as<std::string>()}, /*is_list=*/false);
    } else if (v.IsNull()) {
      ok = assign(e->field, {}, /*is_list=*/true);
    }
    REFRACT_CHECK(ok) << at << ": " << key << ": value is not " << type_name(e->field);
    check_choice(*e, at);
  }
}

void Options::load_yaml_file(const std::string& path) {
  std::ifstream in(path);
  REFRACT_CHECK(in.good()) << "cannot open config file " << path;
  std::stringstream ss;
  ss << in.rdbuf();
  load_yaml_string(ss.str(), path);
}

void Options::add_to(CLI::App& app) {
  auto formatter = std::make_shared<SettingsFormatter>();
  formatter->column_width(app.get_formatter()->get_column_width());
  app.formatter(formatter);
  app.add_option("--config", config_path_, "YAML file of settings (flags override it)")
      ->option_text("PATH");
  for (auto& e : entries_) {
    std::string help = e.help;
    std::string def = value_json(e.field).dump();
    help += " (default " + def + ")";
    for (size_t i = 0; i < e.aliases.size(); ++i)
      help += (i ? ", --" : " (alias: --") + e.aliases[i].name + (i + 1 == e.aliases.size() ? ")" : "");
    // Each alias is its own hidden option so that giving both spellings can be rejected.
    auto add = [&](const std::string& name, std::vector<std::string>& raw, std::string& flag_value,
                   const std::string& text) {
      if (std::holds_alternative<bool*>(e.field)) {
        // `--use_peft` means true; `--use_peft=false` is also accepted.
        flag_value.clear();
        return app.add_flag("--" + name + "{true}", flag_value, text);
      }
      // Every flag takes one or more values, as parse() reports a count mismatch naming the key.
      return app.add_option("--" + name, raw, text)->expected(1, -1)->option_text(flag_type_text(e));
    };
    e.option = add(e.key, e.raw, e.flag_value, help);
    for (auto& a : e.aliases)
      a.option = add(a.name, a.raw, a.flag_value, "alias of --" + e.key)->group("");
  }
}

void Options::parse() {
  if (!config_path_.empty()) load_yaml_file(config_path_);
  for (auto& e : entries_) {
    const std::string* name = nullptr;
    const std::vector<std::string>* given = nullptr;
    const std::string* flag_value = nullptr;
    if (e.option && e.option->count() > 0) name = &e.key, given = &e.raw, flag_value = &e.flag_value;
    for (const auto& a : e.aliases) {
      if (!a.option || a.option->count() == 0) continue;
      REFRACT_CHECK(!name) << "--" << a.name << " and --" << *name << " are the same key; give one";
      name = &a.name, given = &a.raw, flag_value = &a.flag_value;
    }
    if (!name) continue;
    std::vector<std::string> raw = *given;
    if (std::holds_alternative<bool*>(e.field))
      raw = {flag_value->empty() ? std::string("true") : *flag_value};
    const bool many = is_list_field(e.field) || std::holds_alternative<nlohmann::json*>(e.field);
    if (!many && raw.size() != 1) {
      REFRACT_FAIL() << "--" << *name << ": expected one value, got " << raw.size();
    }
    std::string shown;
    for (const auto& r : raw) shown += (shown.empty() ? "" : " ") + r;
    REFRACT_CHECK(assign(e.field, raw, /*is_list=*/false))
        << "--" << *name << ": '" << shown << "' is not " << type_name(e.field);
    check_choice(e, "--" + *name);
  }
}

nlohmann::json Options::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& e : entries_) j[e.key] = value_json(e.field);
  return j;
}

std::vector<std::string> flag_choices(const CLI::Option& flag) {
  const std::string& t = flag.get_option_text();  // "{a|b}", as flag_type_text() writes it
  if (t.size() < 2 || t.front() != '{' || t.back() != '}') return {};
  std::vector<std::string> out;
  std::stringstream ss(t.substr(1, t.size() - 2));
  std::string item;
  while (std::getline(ss, item, '|')) out.push_back(item);
  return out;
}

std::string Options::to_yaml() const {
  YAML::Emitter out;
  out << YAML::BeginMap;
  for (const auto& e : entries_) {
    out << YAML::Key << e.key << YAML::Value;
    if (auto* j = std::get_if<nlohmann::json*>(&e.field)) emit_json(out, **j);
    else out << YAML::Flow << YAML::Load(value_json(e.field).dump());
  }
  out << YAML::EndMap;
  return out.c_str();
}

}  // namespace refract
