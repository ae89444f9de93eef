#include <gtest/gtest.h>

#include "core/config.h"
#include "core/error.h"
#include "test_util.h"

namespace ml3 {
namespace {

Schema demo_schema() {
  Schema s;
  s.add_string("env.name", "reacher", "environment", {"pointmass", "reacher"});
  s.add_double("ppo.lr", 3e-4, "learning rate", 0.0, 1.0, true);
  s.add_int("ppo.batch", 64, "batch size", 1);
  s.add_bool("ppo.anneal", false, "anneal");
  s.add_int_list("policy.hidden", {64, 64}, "hidden sizes");
  return s;
}

using test::error_of;

TEST(Config, DefaultsYamlAndOverrides) {
  Config c(demo_schema());
  EXPECT_DOUBLE_EQ(c.get_double("ppo.lr"), 3e-4);
  c.load_yaml_string("ppo:\n  lr: 1e-3\n  anneal: true\npolicy:\n  hidden: [32, 16]\n", "x.yaml");
  c.apply_overrides({"ppo.batch=128", "env.name=pointmass"});
  EXPECT_DOUBLE_EQ(c.get_double("ppo.lr"), 1e-3);
  EXPECT_TRUE(c.get_bool("ppo.anneal"));
  EXPECT_EQ(c.get_int("ppo.batch"), 128);
  EXPECT_EQ(c.get_string("env.name"), "pointmass");
  EXPECT_EQ(c.get_int_list("policy.hidden"), std::vector<int>({32, 16}));
}

TEST(Config, ToYamlRoundTrips) {
  Config c(demo_schema());
  c.apply_overrides({"ppo.lr=0.00123", "policy.hidden=8,4", "ppo.anneal=true"});
  Config d(demo_schema());
  d.load_yaml_string(c.to_yaml(), "dump");
  EXPECT_EQ(c.values(), d.values());
}

TEST(Config, UnknownKeySuggestsTheClosest) {
  Config c(demo_schema());
  const std::string msg = error_of([&] { c.load_yaml_string("ppo:\n  lrr: 0.1\n", "configs/a.yaml"); });
  EXPECT_NE(msg.find("configs/a.yaml:2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unknown config key 'ppo.lrr'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean 'ppo.lr'"), std::string::npos) << msg;
  EXPECT_NE(error_of([&] { c.apply_overrides({"lr=0.1"}); }).find("did you mean 'ppo.lr'"), std::string::npos);
}

TEST(Config, WrongTypesAndRanges) {
  Config c(demo_schema());
  EXPECT_NE(error_of([&] { c.apply_overrides({"ppo.lr=-0.1"}); }).find("expected a number in (0, 1]"),
            std::string::npos);
  EXPECT_NE(error_of([&] { c.apply_overrides({"ppo.batch=0"}); }).find("expected an integer >= 1"), std::string::npos);
  EXPECT_NE(error_of([&] { c.apply_overrides({"ppo.batch=1.5"}); }).find("got '1.5'"), std::string::npos);
  EXPECT_NE(error_of([&] { c.apply_overrides({"ppo.anneal=maybe"}); }).find("true or false"), std::string::npos);
  EXPECT_NE(error_of([&] { c.apply_overrides({"env.name=walker"}); }).find("one of: pointmass reacher"),
            std::string::npos);
  EXPECT_NE(error_of([&] { c.apply_overrides({"ppo.lr=nan"}); }).find("expected a number"), std::string::npos);
  EXPECT_NE(error_of([&] { c.apply_overrides({"ppo.lr"}); }).find("key=value"), std::string::npos);
  EXPECT_NE(error_of([&] { c.load_yaml_string("ppo:\n  lr: [1, 2]\n", "f.yaml"); }).find("got a list"),
            std::string::npos);
  EXPECT_NE(error_of([&] { c.load_yaml_string("policy:\n  hidden: 5\n", "f.yaml"); }).find("list of integers"),
            std::string::npos);
}

TEST(Config, MalformedYamlAndMissingFile) {
  Config c(demo_schema());
  const std::string msg = error_of([&] { c.load_yaml_string("ppo:\n  lr: [1, 2\n", "bad.yaml"); });
  EXPECT_NE(msg.find("bad.yaml:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("malformed YAML"), std::string::npos) << msg;
  EXPECT_NE(error_of([&] { c.load_yaml_file("/no/such/file.yaml"); }).find("cannot open"), std::string::npos);
  EXPECT_NE(error_of([&] { c.load_yaml_string("- a\n- b\n", "list.yaml"); }).find("mapping"), std::string::npos);
}

TEST(Config, SubsetAndPeek) {
  Config c(demo_schema());
  c.apply_overrides({"ppo.batch=7"});
  Config ppo = c.subset("ppo.");
  EXPECT_EQ(ppo.get_int("batch"), 7);
  EXPECT_FALSE(ppo.has("env.name"));
  const auto dir = test::temp_dir("peek");
  test::write_file(dir / "c.yaml", "env:\n  name: pointmass\n");
  EXPECT_EQ(peek_config_value((dir / "c.yaml").string(), {}, "env.name", "x"), "pointmass");
  EXPECT_EQ(peek_config_value((dir / "c.yaml").string(), {"env.name=pusher"}, "env.name", "x"), "pusher");
  EXPECT_EQ(peek_config_value("", {}, "env.name", "x"), "x");
}

}  // namespace
}  // namespace ml3
