#include "common/options.h"

#include <limits>

#include <yaml-cpp/yaml.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <nlohmann/json.hpp>
#include <fstream>
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
  };
  return std::visit(V{}, f);
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
  };
  return std::visit(V{items, is_list}, field);
}

nlohmann::json value_json(const Options::Field& f) {
  return std::visit([](auto* p) { return nlohmann::json(*p); }, f);
}

}  // namespace

Options& Options::add(const std::string& key, Field field, const std::string& help) {
  REFRACT_CHECK(find(key) == nullptr) << "option '" << key << "' declared twice";
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

Options::Entry* Options::find(const std::string& key) {
  for (auto& e : entries_)
    if (e.key == key) return &e;
  return nullptr;
}

bool Options::has(const std::string& key) const {
  return std::any_of(entries_.begin(), entries_.end(),
                     [&](const Entry& e) { return e.key == key; });
}

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
  for (const auto& kv : root) {
    const std::string key = kv.first.as<std::string>();
    const int line = kv.first.Mark().line + 1;
    const std::string at = where + ":" + std::to_string(line);
    Entry* e = find(key);
    REFRACT_CHECK(e) << at << ": unknown key '" << key << "'";
    const YAML::Node& v = kv.second;
    bool ok = false;
    if (v.IsSequence()) {
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
  app.add_option("--config", config_path_, "YAML file of settings (flags override it)");
  for (auto& e : entries_) {
    std::string help = e.help;
    if (!e.choices.empty()) {
      help += " {";
      for (size_t i = 0; i < e.choices.size(); ++i) help += (i ? "|" : "") + e.choices[i];
      help += "}";
    }
    std::string def = value_json(e.field).dump();
    help += " (default " + def + ")";
    if (std::holds_alternative<bool*>(e.field)) {
      // `--use_peft` means true; `--use_peft=false` is also accepted.
      e.flag_value.clear();
      e.option = app.add_flag("--" + e.key + "{true}", e.flag_value, help);
    } else {
      e.option = app.add_option("--" + e.key, e.raw, help)->expected(1, -1);
      if (std::holds_alternative<std::vector<std::string>*>(e.field) ||
          std::holds_alternative<std::vector<int64_t>*>(e.field) ||
          std::holds_alternative<std::vector<double>*>(e.field))
        e.option->type_name("LIST");
    }
  }
}

void Options::parse() {
  if (!config_path_.empty()) load_yaml_file(config_path_);
  for (auto& e : entries_) {
    if (!e.option || e.option->count() == 0) continue;
    std::vector<std::string> raw = e.raw;
    if (std::holds_alternative<bool*>(e.field))
      raw = {e.flag_value.empty() ? std::string("true") : e.flag_value};
    const bool is_vector = std::holds_alternative<std::vector<std::string>*>(e.field) ||
                           std::holds_alternative<std::vector<int64_t>*>(e.field) ||
                           std::holds_alternative<std::vector<double>*>(e.field);
    if (!is_vector && raw.size() != 1) {
      REFRACT_FAIL() << "--" << e.key << ": expected one value, got " << raw.size();
    }
    REFRACT_CHECK(assign(e.field, raw, /*is_list=*/false))
        << "--" << e.key << ": '" << raw[0] << "' is not " << type_name(e.field);
    check_choice(e, "--" + e.key);
  }
}

nlohmann::json Options::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& e : entries_) j[e.key] = value_json(e.field);
  return j;
}

std::string Options::to_yaml() const {
  YAML::Emitter out;
  out << YAML::BeginMap;
  for (const auto& e : entries_) {
    out << YAML::Key << e.key << YAML::Value << YAML::Flow
        << YAML::Load(value_json(e.field).dump());
  }
  out << YAML::EndMap;
  return out.c_str();
}

}  // namespace refract
