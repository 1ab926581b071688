// contrib/ansible against three stock Debian 12 guests (issue 17 §2): ansible-playbook on this
// machine reaches them over SSH through user-net port forwards. The same three guests serve both
// tests, in order (one process: CMakeLists.txt runs the binary as one ctest test): an update
// rollout in batches of one whose second host has a bundle it must refuse, then a takeover of all
// three into the agent, which announces itself to a listener the test runs for the controller.
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>
#include <vm/phase.hpp>

#include "distro_world.hpp"
#include "expect.hpp"
#include "takeover.pb.h"

namespace activate::vm {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int kHosts = 3;
constexpr const char* kKexecPolicy = "/etc/activate/update-kexec.yaml";

// A static address instead of the image's DHCP: the agent restores addresses and routes but runs
// no DHCP client (plugins/payload_embedded/README.md), and the forwards reach the guest at
// 10.0.2.15 only. A restricted slirp offers no router or DNS anyway (takeover_test.cpp).
constexpr const char* kStaticNetwork =
    "# activate e2e: the address QEMU's user network forwards to, configured statically.\n"
    "[Network]\nDHCP=no\nAddress=10.0.2.15/24\nGateway=10.0.2.2\nDNS=10.0.2.3\n";

// Each boot: the engine is installed in every slot image; the first system (X) is set up as
// README "On Debian" says, its running slot marked good once, then the guest waits for SSH.
constexpr const char* kScenario = R"SH(if [ "$V" = X ]; then act mark-good --policy $KEXEC; fi
)SH";

std::string Quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

std::string ReadAll(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

std::string Hex(const std::string& bytes) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (unsigned char c : bytes) out += std::string{digits[c >> 4], digits[c & 15]};
    return out;
}

// One guest of the fleet: its own disk, variable store, www and console log.
struct Host {
    std::string name;  // host1..host3, the inventory name and the TakeoverInit's machine_id
    DistroWorld world;
    std::unique_ptr<Machine> vm;
    uint16_t ssh_port = 0;
};

// The three guests, booted once by the first test that needs them.
class Fleet {
  public:
    static Fleet& Get() {
        static Fleet fleet;
        return fleet;
    }

    Status Start();
    bool started() const { return started_; }
    Host& host(int i) { return hosts_[i]; }
    const fs::path& dir() const { return dir_; }
    const fs::path& key() const { return key_; }
    const fs::path& announcements() const { return announcements_; }

    // ssh root@127.0.0.1 -p <port> COMMAND: its stdout.
    Result<std::string> Ssh(const Host& h, const std::string& command) const {
        return RunCommand(
            {"ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o",
             "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=60",
             "-i", key_.string(), "-p", std::to_string(h.ssh_port), "root@127.0.0.1", command},
            seconds(300));
    }

    // Writes the inventory with `vars` per host (JSON objects) and runs `ansible-playbook
    // activate.fleet.<playbook>` with the collection installed from contrib/ansible; returns its
    // exit code and output.
    Result<std::pair<int, std::string>> Playbook(const std::string& playbook,
                                                 const std::array<json, kHosts>& vars,
                                                 const std::vector<std::string>& extra = {});

  private:
    std::array<Host, kHosts> hosts_;
    fs::path dir_, key_, announcements_;
    bool started_ = false;
};

Status Fleet::Start() {
    dir_ = LogDir() / "e2e-distro" / "AnsibleFleet";
    std::error_code ec;
    fs::remove_all(dir_, ec);
    fs::create_directories(dir_ / "keys", ec);
    announcements_ = dir_ / "announcements.jsonl";
    ACTIVATE_ASSIGN(key_, DistroWorld::SshKey());
    // The collection as a user installs it (ansible-galaxy takes a source directory).
    ACTIVATE_TRY(RunCommand({"ansible-galaxy", "collection", "install", "--force", "-p",
                             (dir_ / "collections").string(), E2E_DISTRO_ANSIBLE_COLLECTION},
                            seconds(300)));
    for (int i = 0; i < kHosts; ++i) {
        hosts_[i].name = "host" + std::to_string(i + 1);
        ACTIVATE_TRY(hosts_[i].world.Init("AnsibleFleet." + hosts_[i].name));
    }
    DistroWorld& first = hosts_[0].world;
    ACTIVATE_ASSIGN(fs::path package, first.Package());
    ACTIVATE_ASSIGN(fs::path network,
                    DistroWorld::SharedFile("static-network.conf", kStaticNetwork));
    const std::vector<GuestFile> extra = {
        {key_.string() + ".pub", "/root/.ssh/authorized_keys"},
        {network, "/etc/systemd/network/20-wired.network.d/static.conf"}};
    // The bundles: Y signed with the trusted e2e key, and the same image signed with a key the
    // hosts do not trust, which the engine refuses before it writes anything (exit 8).
    ACTIVATE_ASSIGN(fs::path y, first.SlotImage("Y", extra, package));
    ACTIVATE_ASSIGN(fs::path uki, first.Uki("X"));
    ACTIVATE_TRY(first.MakeBundle("good", uki, y));
    const fs::path rogue = dir_ / "rogue";
    ACTIVATE_TRY(
        RunCommand({E2E_DISTRO_ACTIVATE, "bundle", "keygen", "-o", rogue.string()}, seconds(60)));
    ACTIVATE_TRY(RunCommand({E2E_DISTRO_ACTIVATE, "bundle", "create", "--key",
                             rogue.string() + ".secret", "--compatible", "metropolis-x86_64",
                             "--version", "1.0", "-o", (first.dir() / "www" / "bad.zip").string(),
                             "kernel_efi.efi=" + uki.string(), "verity_rootfs.img=" + y.string()},
                            seconds(300)));
    for (int i = 0; i < kHosts; ++i) {
        DistroWorld& w = hosts_[i].world;
        ACTIVATE_TRY(w.MakeDisk(extra, package));
        ACTIVATE_TRY(w.Scenario(kScenario));
        if (i > 0)
            for (const char* zip : {"good.zip", "bad.zip"}) {
                fs::create_hard_link(first.dir() / "www" / zip, w.dir() / "www" / zip, ec);
                if (ec)
                    return Error(ErrorKind::internal,
                                 std::string("linking ") + zip + ": " + ec.message());
            }
    }
    // All three boot at once; the agent's announcements reach the listener as the controller's
    // would, at 10.0.2.100:8080 (one process per connection).
    const std::string listener =
        std::string("cmd:/usr/bin/python3 ") + E2E_DISTRO_ANSIBLE_COLLECTION +
        "/roles/takeover/files/announce_listener.py --stdio " + announcements_.string();
    for (int i = 0; i < kHosts; ++i) {
        char mac[32];
        std::snprintf(mac, sizeof mac, "52:54:00:e2:a5:%02x", i + 1);
        ACTIVATE_ASSIGN(hosts_[i].vm,
                        hosts_[i].world.Boot("fleet", {HostForward{22}}, mac, true,
                                             {GuestForward{"10.0.2.100", 8080, listener}}));
        hosts_[i].ssh_port = hosts_[i].vm->host_port(22).value_or(0);
    }
    for (Host& h : hosts_) {
        ACTIVATE_ASSIGN(DistroWorld::Booted booted, DistroWorld::WaitBooted(*h.vm));
        if (booted.variant != "X" || booted.root_partlabel != "METROPOLIS-SYSTEM-A")
            return Error(ErrorKind::internal,
                         h.name + " booted " + booted.variant + " from " + booted.root_partlabel);
        ACTIVATE_ASSIGN(auto marked, DistroWorld::WaitRc(*h.vm, kStep));
        if (marked.first != 0)
            return Error(ErrorKind::internal, h.name + ": mark-good exited " +
                                                  std::to_string(marked.first) + ":\n" +
                                                  marked.second);
    }
    // sshd may still be starting.
    for (Host& h : hosts_) {
        Result<std::string> up = Error(ErrorKind::internal, "not tried");
        for (int attempt = 0; attempt < 20 && !up.ok(); ++attempt) {
            up = Ssh(h, "true");
            if (!up.ok()) std::this_thread::sleep_for(seconds(5));
        }
        if (!up.ok()) return up.error().with_context(h.name + ": ssh");
    }
    started_ = true;
    return {};
}

Result<std::pair<int, std::string>> Fleet::Playbook(const std::string& playbook,
                                                    const std::array<json, kHosts>& vars,
                                                    const std::vector<std::string>& extra) {
    // YAML is a superset of JSON: the inventory is written as JSON.
    json hosts = json::object();
    for (int i = 0; i < kHosts; ++i) {
        json h = {{"ansible_host", "127.0.0.1"},
                  {"ansible_port", hosts_[i].ssh_port},
                  {"ansible_user", "root"},
                  {"ansible_ssh_private_key_file", key_.string()},
                  {"ansible_ssh_common_args",
                   "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"},
                  {"ansible_python_interpreter", "/usr/bin/python3"},
                  {"activate_controller_binary", E2E_DISTRO_ACTIVATE}};
        h.update(vars[i]);
        hosts[hosts_[i].name] = h;
    }
    const fs::path inventory = dir_ / (playbook + "-inventory.json");
    {
        std::ofstream out(inventory);
        out << json{{"all", {{"hosts", hosts}}}}.dump(2);
    }
    const fs::path log = dir_ / (playbook + ".log"), rc = dir_ / (playbook + ".rc");
    std::string command = "cd " + Quote(dir_.string()) +
                          " && ANSIBLE_COLLECTIONS_PATH=" + Quote((dir_ / "collections").string()) +
                          " ANSIBLE_HOME=" + Quote((dir_ / "ansible-home").string()) +
                          " ANSIBLE_HOST_KEY_CHECKING=False ANSIBLE_NOCOLOR=1"
                          // One SSH session per task instead of a copy, a run and a cleanup
                          // (contrib/ansible/README.md recommends it).
                          " ANSIBLE_PIPELINING=True"
                          " ANSIBLE_RETRY_FILES_ENABLED=False ansible-playbook -i " +
                          Quote(inventory.string()) + " activate.fleet." + playbook;
    for (const std::string& e : extra) command += " " + Quote(e);
    command += " >" + Quote(log.string()) + " 2>&1; echo $? >" + Quote(rc.string());
    ACTIVATE_TRY(RunCommand({"sh", "-c", command}, seconds(3600)));
    const std::string output = ReadAll(log);
    std::fprintf(stderr, "ansible-playbook activate.fleet.%s:\n%s", playbook.c_str(),
                 output.c_str());
    return std::make_pair(std::stoi(ReadAll(rc)), output);
}

// "host2 : ok=5 changed=0 unreachable=0 failed=1 ..." from PLAY RECAP; empty when absent.
std::string Recap(const std::string& output, const std::string& host) {
    std::smatch m;
    if (std::regex_search(output, m, std::regex("\n" + host + R"( +: (ok=.*))"))) return m[1];
    return "";
}

// What an untouched host must keep: the engine's view (slots, versions, record) and the bytes of
// its ESP, slot B and firmware variables, hashed on this machine from the guest's files.
struct Footprint {
    std::string status, esp, slot_b, vars;
};

Result<std::string> PartitionHash(const fs::path& disk, const std::string& name) {
    ACTIVATE_ASSIGN(std::string table, RunCommand({"sfdisk", "-J", disk.string()}, seconds(60)));
    // Named: a range-for over a member of a temporary would outlive the temporary (C++20).
    const json parsed = json::parse(table);
    for (const json& p : parsed["partitiontable"]["partitions"]) {
        if (p.value("name", "") != name) continue;
        // Whole MiB reads: with 512-byte ones the footprints took 61 s and 32 s, now 20 and 12.
        const long sector = 512;
        const std::string dd =
            "dd if=" + Quote(disk.string()) + " bs=1M iflag=skip_bytes,count_bytes status=none" +
            " skip=" + std::to_string(p["start"].get<long>() * sector) +
            " count=" + std::to_string(p["size"].get<long>() * sector) + " | sha256sum";
        return RunCommand({"sh", "-c", dd}, seconds(300));
    }
    return Error(ErrorKind::internal, "no partition " + name + " in " + disk.string());
}

Result<Footprint> TakeFootprint(Fleet& fleet, Host& h) {
    Footprint f;
    // The guest's own sync first (inside QEMU): what it wrote before must be in the disk file
    // before this machine hashes it.
    ACTIVATE_ASSIGN(f.status, fleet.Ssh(h, std::string("sync && activate status --json "
                                                       "--policy ") +
                                               kKexecPolicy));
    ACTIVATE_ASSIGN(f.esp, PartitionHash(h.world.dir() / "disk.img", "EFI System Partition"));
    ACTIVATE_ASSIGN(f.slot_b, PartitionHash(h.world.dir() / "disk.img", "METROPOLIS-SYSTEM-B"));
    ACTIVATE_ASSIGN(f.vars,
                    RunCommand({"sha256sum", (h.world.dir() / "vars.fd").string()}, seconds(60)));
    return f;
}

class AnsibleE2E : public ::testing::Test {
  protected:
    void SetUp() override {
        if (::geteuid() != 0) GTEST_SKIP() << "needs root (debootstrap, mkfs.ext4 -d)";
        Fleet& fleet = Fleet::Get();
        if (!fleet.started()) {
            PhaseTimer phase("the fleet");
            Status started = fleet.Start();
            ASSERT_TRUE(started.ok()) << started.error().message();
            phase.mark("images, bundles, three Debian guests booted at once, mark-good, ssh");
        }
    }
};

class AnsibleRollout : public AnsibleE2E {};
class AnsibleTakeover : public AnsibleE2E {};

TEST_F(AnsibleRollout, BatchesOfOneStopAtTheBadHostAndLeaveTheThirdUntouched) {
    PhaseTimer phase("AnsibleRollout.BatchesOfOneStopAtTheBadHostAndLeaveTheThirdUntouched");
    Fleet& fleet = Fleet::Get();
    std::array<Footprint, kHosts> before;
    // host1 is to change: its status is enough.
    for (int i = 1; i < kHosts; ++i) {
        VM_ASSERT_OK_AND_ASSIGN(before[i], TakeFootprint(fleet, fleet.host(i)));
    }
    VM_ASSERT_OK_AND_ASSIGN(before[0].status,
                            fleet.Ssh(fleet.host(0), std::string("activate status --json "
                                                                 "--policy ") +
                                                         kKexecPolicy));
    const json status1 = json::parse(before[0].status);
    EXPECT_EQ(status1["running_slot"], "A");
    EXPECT_EQ(status1["slots"]["A"]["state"], "good") << before[0].status;
    phase.mark("footprints before");

    std::array<json, kHosts> vars;
    for (int i = 0; i < kHosts; ++i) {
        // host2 gets the bundle signed by the untrusted key.
        const std::string zip = i == 1 ? "bad.zip" : "good.zip";
        vars[i] = {{"activate_bundle", (fleet.host(i).world.dir() / "www" / zip).string()},
                   {"activate_bundle_url", "http://10.0.2.100/" + zip}};
    }
    VM_ASSERT_OK_AND_ASSIGN(auto ran, fleet.Playbook("update", vars));
    phase.mark("ansible-playbook activate.fleet.update (serial 1)");
    const auto& [rc, output] = ran;
    EXPECT_EQ(rc, 2) << "ansible-playbook exits 2 when a host failed";
    EXPECT_TRUE(std::regex_search(Recap(output, "host1"),
                                  std::regex("changed=[1-9].* unreachable=0 +failed=0")))
        << Recap(output, "host1");
    EXPECT_TRUE(std::regex_search(Recap(output, "host2"), std::regex("failed=1")))
        << Recap(output, "host2");
    // The play ended with host2's batch: host3 is not even in the recap.
    EXPECT_EQ(Recap(output, "host3"), "");
    EXPECT_EQ(output.find("[host3]"), std::string::npos);
    // host2's failure is the engine refusing the bundle (exit 8), not anything else.
    EXPECT_NE(output.find("\"rc\": 8"), std::string::npos);

    // host1: in slot B, which runs the bundle's version and was assessed good by the unit.
    VM_ASSERT_OK_AND_ASSIGN(std::string s1,
                            fleet.Ssh(fleet.host(0), std::string("activate status "
                                                                 "--json --policy ") +
                                                         kKexecPolicy));
    const json after1 = json::parse(s1);
    EXPECT_EQ(after1["running_slot"], "B") << s1;
    EXPECT_EQ(after1["slots"]["B"]["state"], "good") << s1;
    EXPECT_EQ(after1["slots"]["B"]["version"], "1.0") << s1;
    EXPECT_EQ(after1["last_activation"]["outcome"], "good") << s1;
    EXPECT_EQ(after1["last_activation"]["mode"], "kexec") << s1;
    // host2 refused before writing, host3 never reached: both exactly as before.
    for (int i : {1, 2}) {
        VM_ASSERT_OK_AND_ASSIGN(Footprint after, TakeFootprint(fleet, fleet.host(i)));
        const std::string who = fleet.host(i).name;
        EXPECT_EQ(after.status, before[i].status) << who;
        EXPECT_EQ(after.esp, before[i].esp) << who << ": the ESP changed";
        EXPECT_EQ(after.slot_b, before[i].slot_b) << who << ": slot B changed";
        EXPECT_EQ(after.vars, before[i].vars) << who << ": the EFI variables changed";
    }
    phase.mark("footprints after");

    // Idempotence: host1 is on the bundle's version and is skipped.
    VM_ASSERT_OK_AND_ASSIGN(auto again, fleet.Playbook("update", vars, {"--limit", "host1"}));
    phase.mark("the rollout again, host1 only");
    EXPECT_EQ(again.first, 0);
    EXPECT_NE(again.second.find("runs 1.0 and is good: nothing to do"), std::string::npos);
    EXPECT_TRUE(std::regex_search(Recap(again.second, "host1"),
                                  std::regex("changed=0 +unreachable=0 +failed=0")))
        << Recap(again.second, "host1");
}

TEST_F(AnsibleTakeover, ThreeHostsTakenOverAndEachAgentAnnouncedItselfWithItsKey) {
    PhaseTimer phase("AnsibleTakeover.ThreeHostsTakenOverAndEachAgentAnnouncedItselfWithItsKey");
    Fleet& fleet = Fleet::Get();
    std::array<json, kHosts> vars;
    for (int i = 0; i < kHosts; ++i)
        vars[i] = {{"activate_takeover_binary", E2E_DISTRO_TAKEOVER},
                   {"activate_bmaas_endpoint", "http://10.0.2.100:8080/announce"},
                   {"activate_announce_file", fleet.announcements().string()},
                   {"activate_agent_keys_dir", (fleet.dir() / "keys").string()},
                   {"activate_takeover_delay", "5s"},
                   {"activate_agent_timeout", 900}};
    VM_ASSERT_OK_AND_ASSIGN(auto ran, fleet.Playbook("takeover", vars));
    phase.mark("ansible-playbook activate.fleet.takeover");
    EXPECT_EQ(ran.first, 0);

    const std::string announced = ReadAll(fleet.announcements());
    std::fprintf(stderr, "announcements:\n%s", announced.c_str());
    for (int i = 0; i < kHosts; ++i) {
        Host& h = fleet.host(i);
        EXPECT_TRUE(std::regex_search(Recap(ran.second, h.name), std::regex("failed=0")))
            << Recap(ran.second, h.name);
        // The response takeover wrote, as the role kept it, decoded here independently.
        wire::TakeoverResponse response;
        ASSERT_TRUE(
            response.ParseFromString(ReadAll(fleet.dir() / "keys" / (h.name + ".response.pb"))))
            << h.name;
        ASSERT_TRUE(response.has_success()) << response.DebugString();
        EXPECT_EQ(response.success().init_message().machine_id(), h.name);
        ASSERT_EQ(response.success().key().size(), 32u);
        const std::string key = Hex(response.success().key());
        // The key the role recorded, the one the agent announced, the one it answers with.
        EXPECT_EQ(ReadAll(fleet.dir() / "keys" / (h.name + ".key")), key + "\n") << h.name;
        const json line = {{"machine_id", h.name}, {"port", 22}, {"public_key", key}};
        EXPECT_NE(announced.find(line.dump() + "\n"), std::string::npos)
            << h.name << " did not announce " << line.dump();
        VM_ASSERT_OK(
            h.vm->wait_for_line("AGENT-ANNOUNCED http://10.0.2.100:8080/announce", seconds(60)));
        VM_ASSERT_OK_AND_ASSIGN(std::string identity,
                                RunCommand({"bash", "-c",
                                            "exec 3<>/dev/tcp/127.0.0.1/" +
                                                std::to_string(h.ssh_port) + "; head -n1 <&3"},
                                           seconds(60)));
        EXPECT_NE(identity.find("\"public_key\":\"" + key + "\""), std::string::npos)
            << h.name << ": " << identity;
    }
    phase.mark("keys, announcements, agents' ports");
}

}  // namespace
}  // namespace activate::vm
