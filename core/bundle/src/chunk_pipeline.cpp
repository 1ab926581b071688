// See chunk_pipeline.hpp.
#include "chunk_pipeline.hpp"

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <vector>

namespace activate::bundle {

Result<uint64_t> run_chunk_pipeline(const ChunkStages& stages, size_t chunk_size, size_t depth) {
    const bool digesting = static_cast<bool>(stages.digest);
    std::vector<std::unique_ptr<uint8_t[]>> buffers;
    for (size_t i = 0; i < depth; ++i)
        buffers.push_back(std::make_unique_for_overwrite<uint8_t[]>(chunk_size));
    // Everything below is guarded by `mutex`; a chunk's bytes are handed over through it too:
    // the reader fills buffer i % depth before it counts chunk i as filled, and fills it again
    // only once the sink and the digest are done with chunk i.
    std::mutex mutex;
    std::condition_variable changed;
    std::vector<size_t> sizes(depth);
    uint64_t filled = 0, digested = 0, sunk = 0;
    std::optional<uint64_t> last;
    std::optional<Error> fill_error;  // the reader stopped at chunk `filled`
    bool stop = false;

    auto read_chunks = [&] {
        for (uint64_t i = 0;; ++i) {
            {
                std::unique_lock lock(mutex);
                changed.wait(lock, [&] {
                    return stop || i < std::min(sunk, digesting ? digested : sunk) + depth;
                });
                if (stop) return;
            }
            Result<ChunkStages::Filled> got =
                stages.fill(std::span<uint8_t>(buffers[i % depth].get(), chunk_size));
            std::lock_guard lock(mutex);
            if (!got.ok()) {
                fill_error = std::move(got).error();
            } else {
                sizes[i % depth] = got->size;
                if (got->end) last = i;
                filled = i + 1;
            }
            changed.notify_all();
            if (fill_error || last) return;
        }
    };
    auto digest_chunks = [&] {
        for (uint64_t i = 0;; ++i) {
            size_t size = 0;
            {
                std::unique_lock lock(mutex);
                changed.wait(lock, [&] { return stop || filled > i || fill_error; });
                if (stop || filled <= i) return;
                size = sizes[i % depth];
            }
            stages.digest(std::span<const uint8_t>(buffers[i % depth].get(), size));
            std::lock_guard lock(mutex);
            digested = i + 1;
            changed.notify_all();
            if (last == i) return;
        }
    };

    std::thread reader, digester;
    auto join_threads = [&] {
        if (reader.joinable()) reader.join();
        if (digester.joinable()) digester.join();
    };
    auto stop_and_join = [&] {
        {
            std::lock_guard lock(mutex);
            stop = true;
        }
        changed.notify_all();
        join_threads();
    };
    // Declared after everything the threads use, so that no return path frees it under them.
    struct Joiner {
        decltype(stop_and_join)& run;
        ~Joiner() { run(); }
    } joiner{stop_and_join};
    try {
        reader = std::thread(read_chunks);
        if (digesting) digester = std::thread(digest_chunks);
    } catch (const std::system_error& e) {
        return Error(ErrorKind::internal, std::string("cannot start a thread to copy with: ") +
                                              e.code().message());
    }

    uint64_t total = 0;
    for (uint64_t i = 0;; ++i) {
        size_t size = 0;
        bool is_last = false;
        {
            std::unique_lock lock(mutex);
            changed.wait(lock, [&] { return filled > i || fill_error; });
            if (filled <= i) {
                Error e = std::move(*fill_error);
                lock.unlock();
                return e;
            }
            size = sizes[i % depth];
            is_last = last == i;
        }
        const std::span<const uint8_t> chunk(buffers[i % depth].get(), size);
        if (is_last) {
            // Both threads end by themselves after the last chunk; once joined, what they
            // computed is the caller's to check.
            join_threads();
            ACTIVATE_TRY(stages.check());
            if (size > 0) ACTIVATE_TRY(stages.sink(chunk));
            return total + size;
        }
        if (size > 0) ACTIVATE_TRY(stages.sink(chunk));
        total += size;
        {
            std::lock_guard lock(mutex);
            sunk = i + 1;
        }
        changed.notify_all();
    }
}

}  // namespace activate::bundle
