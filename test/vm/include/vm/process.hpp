// A child process in its own process group whose stdout is captured line by line, with a hard
// time limit: the harness's way to run QEMU, swtpm and the image builders. A reader thread per
// process drains its pipes so a chatty guest never stalls on a full pipe.
#pragma once

#include <sys/types.h>

#include <activate/result.hpp>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace activate::vm {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

struct SpawnOptions {
    std::vector<std::string> argv;  // argv[0] is looked up in PATH
    std::string name;               // used in messages, e.g. "qemu vm-a"
    // File descriptors the child keeps under the same number (everything else is close-on-exec).
    std::vector<int> inherit_fds;
    // Hard limit for the whole run: when it passes, the process group gets SIGKILL.
    milliseconds timeout = seconds(300);
    // Called on the reader thread for each stdout line (without "\n", "\r" or terminal escapes).
    std::function<void(std::string_view)> on_line;
    // Raw stdout is appended here when set (the serial console log of a guest).
    std::filesystem::path log_file;
    // Echo each stdout line to our stderr with the name as prefix (ACTIVATE_VM_VERBOSE=1 too).
    bool echo = false;
};

struct ExitStatus {
    bool timed_out = false;  // killed by us because SpawnOptions::timeout passed
    int code = -1;           // exit code, or -1 when killed by a signal
    int signal = 0;          // the terminating signal, 0 when it exited
    bool clean() const { return !timed_out && signal == 0 && code == 0; }
    std::string describe() const;
};

struct LineMatch {
    std::string line;
    std::vector<std::string> groups;  // groups[0] is the whole match
    size_t index = 0;                 // position in lines()
    Clock::time_point arrived;        // when the reader thread got the whole line
};

class Process {
  public:
    static Result<std::unique_ptr<Process>> Spawn(SpawnOptions options);
    ~Process();  // kills the process group if still running
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    pid_t pid() const { return pid_; }
    const std::string& name() const { return options_.name; }

    // One waiting thread at a time; never call these or kill() from the on_line callback.
    // Waits for a stdout line matching the ECMAScript regex (std::regex_search), looking at the
    // lines after the previous match. Fails when the process exits first or on timeout, with the
    // last lines of output and stderr in the message.
    Result<LineMatch> wait_for_line(const std::string& regex, milliseconds timeout);
    // Waits for the process to end. Fails on timeout (the process keeps running).
    Result<ExitStatus> wait(milliseconds timeout);
    // SIGKILL to the process group, then reaps it.
    void kill();

    bool running() const;
    std::vector<std::string> lines() const;
    std::string stderr_text() const;
    // The last n stdout lines and the stderr text, for error messages.
    std::string tail(size_t n = 30) const;

  private:
    explicit Process(SpawnOptions options) : options_(std::move(options)) {}
    void pump();
    void add_output(std::string& pending, const char* data, size_t n, bool is_stdout);
    void finish_line(std::string line);

    SpawnOptions options_;
    pid_t pid_ = -1;
    int pidfd_ = -1, out_fd_ = -1, err_fd_ = -1, wake_fd_ = -1, log_fd_ = -1;
    Clock::time_point deadline_;
    std::thread reader_;

    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::vector<std::string> lines_;
    std::vector<Clock::time_point> line_times_;  // arrival of each line in lines_
    std::string stderr_;
    size_t cursor_ = 0;
    bool zombie_marked_ = false;  // exited but not yet reaped: the group id is still ours
    bool exited_ = false;
    ExitStatus status_;
};

// Runs a command to completion; fails with its stderr unless it exits 0.
Result<std::string> RunCommand(const std::vector<std::string>& argv, milliseconds timeout);

// Strips terminal escape sequences (OVMF draws its screen with them) and carriage returns.
std::string CleanLine(std::string_view raw);

}  // namespace activate::vm
