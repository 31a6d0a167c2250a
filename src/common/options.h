// Settings: one name per key, used alike in YAML (--config), in --flags and in code.
//
// A settings struct is plain data with TRL / VLM-R1 field names. Its `declare` function
// lists every key once:
//
//   struct GrpoConfig { int64_t num_generations = 8; double beta = 0.0; ... };
//   void declare(Options& o, GrpoConfig& c) {
//     o.add("num_generations", &c.num_generations, "completions sampled per prompt (G)");
//     o.add("beta", &c.beta, "KL coefficient against the reference policy");
//   }
//
// Precedence: code defaults < YAML file < command-line flags. An unknown YAML key or a
// value of the wrong type is an error that names the key (and the file).
//
// A nlohmann::json field holds a mapping (e.g. reward_kwargs: {iou: {iou_convention: vlm_r1}}):
// YAML gives it as a mapping (scalars typed as YAML 1.2 reads them: true, 20, 0.5, a string;
// quote a string that looks like a number). A flag value is either a mapping in JSON / YAML
// flow form ('{"iou": {"iou_convention": "vlm_r1"}}') or OUTER.INNER=VALUE (the last '.'
// splits the path: iou.iou_convention=vlm_r1; VALUE typed as a plain YAML scalar, else taken
// as written); flags are merged key by key into what the YAML file gave.
//
// alias("model") gives the last added key a second spelling, in YAML and as a flag; giving
// both spellings in one YAML file or on one command line is an error.
#pragma once
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace CLI {
class App;
class Option;
}

namespace refract {

class Options {
 public:
  using Field = std::variant<bool*, int*, int64_t*, double*, float*, std::string*,
                             std::vector<std::string>*, std::vector<int64_t>*,
                             std::vector<double>*, nlohmann::json*>;

  Options& add(const std::string& key, Field field, const std::string& help);
  // Restricts the last added string key to these values.
  Options& choices(std::vector<std::string> allowed);
  // Another name of the last added key (YAML key and --flag), shown in --help.
  Options& alias(const std::string& other_name);
  // Marks the last added string key as a filesystem path (PATH in --help).
  Options& path();

  // Adds --config and one --<key> flag per key to `app`. Call parse() after app.parse().
  void add_to(CLI::App& app);
  // Applies the YAML file given by --config (if any), then the flags given on the command line.
  void parse();

  // Loads a YAML mapping of key: value. `where` names the source in errors.
  void load_yaml_file(const std::string& path);
  void load_yaml_string(const std::string& text, const std::string& where);
  // Sets one key from its textual form (what a flag receives). Throws naming the key.
  void set(const std::string& key, const std::string& value, const std::string& where = "flag");
  bool has(const std::string& key) const;

  // The effective settings, e.g. to record next to a checkpoint.
  nlohmann::json to_json() const;
  std::string to_yaml() const;
  const std::string& config_path() const { return config_path_; }

  struct Entry {
    std::string key;
    Field field;
    std::string help;
    std::vector<std::string> choices;
    bool is_path = false;
    std::vector<std::string> raw;  // values given on the command line
    std::string flag_value;        // a boolean flag's value
    CLI::Option* option = nullptr;
    struct Alias {
      std::string name;
      std::vector<std::string> raw;
      std::string flag_value;
      CLI::Option* option = nullptr;
    };
    std::vector<Alias> aliases;
  };

 private:
  Entry* find(const std::string& key);
  const Entry* find(const std::string& key) const;
  void check_choice(const Entry& e, const std::string& where) const;
  std::vector<Entry> entries_;
  std::string config_path_;
};

// The values of a choice key's flag made by add_to(), else empty; for shell completion
// (refract completion bash), which sees only the CLI::App tree.
std::vector<std::string> flag_choices(const CLI::Option& flag);

}  // namespace refract
