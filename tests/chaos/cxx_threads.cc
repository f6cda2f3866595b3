// cxx_threads.cc: a C++ std::thread program with cross-thread deletes, for
// the chaos runs. Producers allocate items (a std::string, a std::vector and
// the item itself, new/delete through the malloc in use) whose contents are
// a function of the item's id, and hand each to a consumer chosen by the id;
// consumers check and delete them. Each item's checksum depends on its id
// only, so the total printed is the same whatever the scheduling and the
// malloc; a wrong byte makes the program say so and exit 1.
//
// usage: cxx_threads [items-per-producer [producers [consumers]]]
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Item {
    uint64_t id;
    std::string text;
    std::vector<uint64_t> words;
};

uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

Item *make(uint64_t id)
{
    auto *it = new Item;
    it->id = id;
    uint64_t h = mix(id);
    it->text.assign(1 + h % 300, static_cast<char>('a' + id % 26));
    it->words.resize(1 + (h >> 16) % 200);
    for (size_t i = 0; i < it->words.size(); i++)
        it->words[i] = mix(id * 1000003 + i);
    return it;
}

// The item's checksum, or ~0 when its contents are not what make() wrote.
uint64_t check(const Item *it)
{
    uint64_t h = mix(it->id), sum = it->id;
    if (it->text.size() != 1 + h % 300 || it->words.size() != 1 + (h >> 16) % 200)
        return ~0ULL;
    for (char c : it->text)
        if (c != static_cast<char>('a' + it->id % 26))
            return ~0ULL;
    for (size_t i = 0; i < it->words.size(); i++) {
        if (it->words[i] != mix(it->id * 1000003 + i))
            return ~0ULL;
        sum += it->words[i];
    }
    return sum + it->text.size();
}

struct Queue {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<Item *> items;
    int producers_left = 0;
};

}  // namespace

int main(int argc, char **argv)
{
    uint64_t per = argc > 1 ? std::strtoull(argv[1], nullptr, 0) : 200000;
    int np = argc > 2 ? std::atoi(argv[2]) : 3, nc = argc > 3 ? std::atoi(argv[3]) : 3;
    std::vector<std::unique_ptr<Queue>> qs;
    for (int c = 0; c < nc; c++) {
        qs.emplace_back(new Queue);
        qs.back()->producers_left = np;
    }
    std::vector<uint64_t> sums(nc, 0);
    std::vector<int> bad(nc, 0);
    std::vector<std::thread> threads;
    for (int c = 0; c < nc; c++)
        threads.emplace_back([&, c] {
            Queue &q = *qs[c];
            for (;;) {
                std::unique_lock<std::mutex> lk(q.mu);
                q.cv.wait(lk, [&] { return !q.items.empty() || q.producers_left == 0; });
                if (q.items.empty())
                    return;
                Item *it = q.items.front();
                q.items.pop_front();
                lk.unlock();
                uint64_t s = check(it);
                if (s == ~0ULL)
                    bad[c]++;
                else
                    sums[c] += s;
                delete it;              // freed by another thread than the one that made it
            }
        });
    for (int p = 0; p < np; p++)
        threads.emplace_back([&, p] {
            std::vector<Item *> mine;   // some stay a while, some die here
            for (uint64_t i = 0; i < per; i++) {
                uint64_t id = static_cast<uint64_t>(p) * per + i;
                Item *it = make(id);
                if (mix(id) % 8 == 0) {
                    mine.push_back(it);
                    if (mine.size() > 64) {
                        Item *old = mine[mix(id) % mine.size()];
                        mine.erase(mine.begin() + static_cast<long>(mix(id) % mine.size()));
                        mine.push_back(old);
                        it = mine.front();
                        mine.erase(mine.begin());
                    } else {
                        continue;
                    }
                }
                Queue &q = *qs[it->id % static_cast<uint64_t>(nc)];
                {
                    std::lock_guard<std::mutex> lk(q.mu);
                    q.items.push_back(it);
                }
                q.cv.notify_one();
            }
            for (Item *it : mine) {
                Queue &q = *qs[it->id % static_cast<uint64_t>(nc)];
                std::lock_guard<std::mutex> lk(q.mu);
                q.items.push_back(it);
            }
            for (auto &q : qs) {
                std::lock_guard<std::mutex> lk(q->mu);
                q->producers_left--;
                q->cv.notify_all();
            }
        });
    for (auto &t : threads)
        t.join();
    uint64_t total = 0;
    int nbad = 0;
    for (int c = 0; c < nc; c++) {
        total += sums[c];
        nbad += bad[c];
    }
    std::printf("cxx: %llu items, checksum %016llx\n",
                static_cast<unsigned long long>(per * static_cast<uint64_t>(np)),
                static_cast<unsigned long long>(total));
    if (nbad) {
        std::fprintf(stderr, "cxx: FAIL: %d items with wrong contents\n", nbad);
        return 1;
    }
    return 0;
}
