# Shared by the benchmark scripts (sourced after they cd to the checkout): timing, medians.
now_ns() { date +%s%N; }
# The median of nanosecond samples on stdin, in milliseconds (one decimal) ...
median_ms() { _median 1e6 "%.1f"; }
# ... or in seconds (two decimals).
median_s() { _median 1e9 "%.2f"; }
_median() { sort -n | awk -v d="$1" -v f="$2" '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf f, m/d}'; }
