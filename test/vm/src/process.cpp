// fork/exec with a process group per child, a pidfd to learn of its exit and one reader thread
// that owns reaping, so that killing the group can never hit a recycled pid.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <regex>
#include <sstream>
#include <vm/process.hpp>

namespace activate::vm {
namespace {

void close_fd(int& fd) {
    if (fd >= 0) ::close(fd);
    fd = -1;
}

bool verbose_env() {
    const char* v = std::getenv("ACTIVATE_VM_VERBOSE");
    return v && *v && std::string_view(v) != "0";
}

int pidfd_open(pid_t pid) {
#ifdef SYS_pidfd_open
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

}  // namespace

std::string ExitStatus::describe() const {
    if (timed_out) return "killed after its time limit";
    if (signal) return std::string("killed by signal ") + strsignal(signal);
    return "exited with code " + std::to_string(code);
}

std::string CleanLine(std::string_view raw) {
    std::string out;
    out.reserve(raw.size());
    for (size_t i = 0; i < raw.size(); ++i) {
        unsigned char c = raw[i];
        if (c == 0x1b) {  // ECMA-48: CSI is ESC [ params final(0x40-0x7e); others are ESC + one
            if (i + 1 < raw.size() && raw[i + 1] == '[') {
                i += 2;
                while (i < raw.size() && !(raw[i] >= 0x40 && raw[i] <= 0x7e)) ++i;
            } else {
                ++i;
            }
            continue;
        }
        if (c == '\r' || (c < 0x20 && c != '\t')) continue;
        out.push_back(static_cast<char>(c));
    }
    return out;
}

Result<std::unique_ptr<Process>> Process::Spawn(SpawnOptions options) {
    if (options.argv.empty()) return Error(ErrorKind::usage, "spawn: empty command");
    if (options.name.empty()) options.name = options.argv[0];
    std::unique_ptr<Process> p(new Process(std::move(options)));
    const SpawnOptions& o = p->options_;

    int out[2], err[2], exec_err[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return errno_error(ErrorKind::internal, "pipe");
    if (::pipe2(err, O_CLOEXEC) != 0) {
        int e = errno;
        ::close(out[0]), ::close(out[1]);
        return errno_error(ErrorKind::internal, "pipe", e);
    }
    if (::pipe2(exec_err, O_CLOEXEC) != 0) {
        int e = errno;
        ::close(out[0]), ::close(out[1]), ::close(err[0]), ::close(err[1]);
        return errno_error(ErrorKind::internal, "pipe", e);
    }
    if (!o.log_file.empty()) {
        std::error_code ec;
        std::filesystem::create_directories(o.log_file.parent_path(), ec);
        p->log_fd_ = ::open(o.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    }

    // Everything the child touches is prepared here: after fork only async-signal-safe calls.
    std::vector<char*> argv;
    for (const auto& a : o.argv) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();

    pid_t pid = ::fork();
    if (pid < 0) {
        int e = errno;
        for (int fd : {out[0], out[1], err[0], err[1], exec_err[0], exec_err[1]}) ::close(fd);
        return errno_error(ErrorKind::internal, "fork", e);
    }
    if (pid == 0) {
        ::setpgid(0, 0);
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // the test dying must not leave a guest behind
        if (::getppid() != parent) ::_exit(127);
        int devnull = ::open("/dev/null", O_RDONLY);
        if (devnull >= 0) ::dup2(devnull, 0);
        ::dup2(out[1], 1);
        ::dup2(err[1], 2);
        for (int fd : o.inherit_fds) ::fcntl(fd, F_SETFD, 0);
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        struct sigaction dfl {};
        dfl.sa_handler = SIG_DFL;
        ::sigaction(SIGPIPE, &dfl, nullptr);
        ::execvp(argv[0], argv.data());
        int e = errno;
        (void)!::write(exec_err[1], &e, sizeof e);
        ::_exit(127);
    }
    ::setpgid(pid, pid);  // also here, so the group exists before we might signal it
    p->pid_ = pid;
    ::close(out[1]);
    ::close(err[1]);
    ::close(exec_err[1]);
    int exec_errno = 0;
    ssize_t n;
    do {
        n = ::read(exec_err[0], &exec_errno, sizeof exec_errno);
    } while (n < 0 && errno == EINTR);
    ::close(exec_err[0]);
    p->out_fd_ = out[0];
    p->err_fd_ = err[0];
    if (n == sizeof exec_errno) {
        ::waitpid(pid, nullptr, 0);
        p->pid_ = -1;
        return errno_error(ErrorKind::internal, "exec " + o.argv[0], exec_errno);
    }
    p->pidfd_ = pidfd_open(pid);  // may fail on old kernels: pump() then polls waitpid
    p->wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    p->deadline_ = Clock::now() + o.timeout;
    Process* raw = p.get();
    p->reader_ = std::thread([raw] { raw->pump(); });
    return p;
}

Process::~Process() {
    kill();
    if (reader_.joinable()) reader_.join();
    for (int* fd : {&pidfd_, &out_fd_, &err_fd_, &wake_fd_, &log_fd_}) close_fd(*fd);
}

void Process::finish_line(std::string line) {
    if (options_.on_line) options_.on_line(line);
    if (options_.echo || verbose_env())
        std::fprintf(stderr, "[%s] %s\n", options_.name.c_str(), line.c_str());
    std::lock_guard lock(mu_);
    lines_.push_back(std::move(line));
    line_times_.push_back(Clock::now());
    cv_.notify_all();
}

void Process::add_output(std::string& pending, const char* data, size_t n, bool is_stdout) {
    if (!is_stdout) {
        std::lock_guard lock(mu_);
        stderr_.append(data, n);
        return;
    }
    if (log_fd_ >= 0) (void)!::write(log_fd_, data, n);
    pending.append(data, n);
    size_t start = 0, nl;
    while ((nl = pending.find('\n', start)) != std::string::npos) {
        finish_line(CleanLine(std::string_view(pending).substr(start, nl - start)));
        start = nl + 1;
    }
    pending.erase(0, start);
}

void Process::pump() {
    std::string out_pending, err_pending;
    bool zombie = false, timed_out = false;
    Clock::time_point drain_until{};
    char buf[16384];
    for (;;) {
        auto now = Clock::now();
        if (!zombie) {
            // WNOWAIT leaves the zombie in place, so the pid (and group id) stays ours until
            // we mark it and reap below.
            siginfo_t info{};
            if (::waitid(P_PID, pid_, &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
                info.si_pid == pid_) {
                zombie = true;
                drain_until = now + milliseconds(300);
            } else if (now >= deadline_ && !timed_out) {
                timed_out = true;
                ::kill(-pid_, SIGKILL);
            }
        }
        if (zombie && ((out_fd_ < 0 && err_fd_ < 0) || now >= drain_until)) break;

        pollfd fds[4];
        int nfds = 0, out_i = -1, err_i = -1;
        if (out_fd_ >= 0) out_i = nfds, fds[nfds++] = {out_fd_, POLLIN, 0};
        if (err_fd_ >= 0) err_i = nfds, fds[nfds++] = {err_fd_, POLLIN, 0};
        if (!zombie && pidfd_ >= 0) fds[nfds++] = {pidfd_, POLLIN, 0};
        int wake_i = -1;
        if (!zombie && wake_fd_ >= 0) wake_i = nfds, fds[nfds++] = {wake_fd_, POLLIN, 0};
        auto until = zombie ? drain_until : (timed_out ? now + milliseconds(50) : deadline_);
        if (!zombie && pidfd_ < 0) until = std::min(until, now + milliseconds(50));
        auto wait_ms = std::chrono::duration_cast<milliseconds>(until - now).count();
        int r = ::poll(fds, nfds, static_cast<int>(std::clamp<long long>(wait_ms, 0, 1000)));
        if (r < 0 && errno != EINTR) {
            ::kill(-pid_, SIGKILL);  // cannot watch it any more: do not leave it running
            break;
        }
        if (wake_i >= 0 && (fds[wake_i].revents & POLLIN)) {
            uint64_t count;
            (void)!::read(wake_fd_, &count, sizeof count);  // kill() already sent the signal
        }
        for (auto [i, fdp, is_out] :
             {std::tuple{out_i, &out_fd_, true}, std::tuple{err_i, &err_fd_, false}}) {
            if (i < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t n = ::read(*fdp, buf, sizeof buf);
            if (n > 0) {
                add_output(is_out ? out_pending : err_pending, buf, static_cast<size_t>(n), is_out);
            } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
                close_fd(*fdp);
            }
        }
    }
    if (!out_pending.empty()) finish_line(CleanLine(out_pending));

    {
        std::lock_guard lock(mu_);
        zombie_marked_ = true;
    }
    int st = 0;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
    ExitStatus s;
    s.timed_out = timed_out;
    if (WIFEXITED(st)) s.code = WEXITSTATUS(st);
    if (WIFSIGNALED(st)) s.signal = WTERMSIG(st);
    std::lock_guard lock(mu_);
    status_ = s;
    exited_ = true;
    cv_.notify_all();
}

void Process::kill() {
    {
        std::lock_guard lock(mu_);
        if (pid_ <= 0 || zombie_marked_) return;
        ::kill(-pid_, SIGKILL);
    }
    if (wake_fd_ >= 0) {
        uint64_t one = 1;
        (void)!::write(wake_fd_, &one, sizeof one);
    }
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return exited_; });
}

bool Process::running() const {
    std::lock_guard lock(mu_);
    return !exited_;
}

std::vector<std::string> Process::lines() const {
    std::lock_guard lock(mu_);
    return lines_;
}

std::string Process::stderr_text() const {
    std::lock_guard lock(mu_);
    return stderr_;
}

std::string Process::tail(size_t n) const {
    std::lock_guard lock(mu_);
    std::ostringstream s;
    size_t from = lines_.size() > n ? lines_.size() - n : 0;
    s << "--- last " << (lines_.size() - from) << " lines of " << options_.name << " output ---\n";
    for (size_t i = from; i < lines_.size(); ++i) s << lines_[i] << "\n";
    if (!stderr_.empty()) s << "--- stderr of " << options_.name << " ---\n" << stderr_;
    return s.str();
}

Result<LineMatch> Process::wait_for_line(const std::string& pattern, milliseconds timeout) {
    std::regex re;
    try {
        re = std::regex(pattern, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
        return Error(ErrorKind::usage, "bad regex /" + pattern + "/: " + e.what());
    }
    const auto deadline = Clock::now() + timeout;
    std::unique_lock lock(mu_);
    for (;;) {
        for (; cursor_ < lines_.size(); ++cursor_) {
            std::smatch m;
            if (std::regex_search(lines_[cursor_], m, re)) {
                LineMatch out{lines_[cursor_], {}, cursor_, line_times_[cursor_]};
                for (const auto& g : m) out.groups.push_back(g.str());
                ++cursor_;
                return out;
            }
        }
        if (exited_) {
            std::string why = status_.describe();
            lock.unlock();
            return Error(ErrorKind::internal, options_.name + " " + why +
                                                  " before printing a line matching /" + pattern +
                                                  "/\n" + tail());
        }
        if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && cursor_ == lines_.size() &&
            !exited_) {
            lock.unlock();
            auto secs = std::chrono::duration_cast<milliseconds>(timeout).count() / 1000.0;
            std::ostringstream s;
            s << options_.name << ": no line matching /" << pattern << "/ within " << secs << " s\n"
              << tail();
            return Error(ErrorKind::internal, s.str());
        }
    }
}

Result<ExitStatus> Process::wait(milliseconds timeout) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return exited_; })) {
        lock.unlock();
        auto secs = std::chrono::duration_cast<milliseconds>(timeout).count() / 1000.0;
        std::ostringstream s;
        s << options_.name << ": still running after " << secs << " s\n" << tail();
        return Error(ErrorKind::internal, s.str());
    }
    return status_;
}

Result<std::string> RunCommand(const std::vector<std::string>& argv, milliseconds timeout) {
    SpawnOptions o;
    o.argv = argv;
    o.timeout = timeout;
    ACTIVATE_ASSIGN(auto p, Process::Spawn(std::move(o)));
    ACTIVATE_ASSIGN(ExitStatus st, p->wait(timeout + seconds(5)));
    if (!st.clean()) {
        std::string cmd;
        for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
        return Error(ErrorKind::internal, cmd + ": " + st.describe() + "\n" + p->stderr_text());
    }
    std::string out;
    for (const auto& l : p->lines()) out += l + "\n";
    return out;
}

}  // namespace activate::vm
