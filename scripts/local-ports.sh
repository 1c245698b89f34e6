# The local services' ports as scripts/services.sh reads them (TSP_LOCAL_*_PORT), and the
# `--set` arguments that point tsp-job or tsp-bench at them when they are moved. Sourced by the
# scripts that start either binary against the development set.
#
#   . scripts/local-ports.sh   then   target/release/tsp-job "${LOCAL_SETS[@]}" …
LOCAL_MYSQL_PORT=${TSP_LOCAL_MYSQL_PORT:-3306}
LOCAL_REDIS_PORT=${TSP_LOCAL_REDIS_PORT:-6379}
LOCAL_MONGO_PORT=${TSP_LOCAL_MONGO_PORT:-27017}
LOCAL_INFLUX_PORT=${TSP_LOCAL_INFLUX_PORT:-8086}
LOCAL_INFLUX_RPC_PORT=${TSP_LOCAL_INFLUX_RPC_PORT:-8088}
LOCAL_CLUSTER_PORT=${TSP_LOCAL_CLUSTER_PORT:-7001}
# The Cluster's first three nodes, as seeds.
LOCAL_CLUSTER_SEEDS=127.0.0.1:$LOCAL_CLUSTER_PORT,127.0.0.1:$((LOCAL_CLUSTER_PORT + 1)),127.0.0.1:$((LOCAL_CLUSTER_PORT + 2))
LOCAL_SETS=(
  --set "redis.cache.port=$LOCAL_REDIS_PORT"
  --set "mongo.cache.port=$LOCAL_MONGO_PORT" --set "mongo.dataset.port=$LOCAL_MONGO_PORT"
  --set "influx.primary.url=http://127.0.0.1:$LOCAL_INFLUX_PORT"
  --set "influx.uis.url=http://127.0.0.1:$LOCAL_INFLUX_PORT"
  --set "backup.influx_rpc_port=$LOCAL_INFLUX_RPC_PORT"
)
for _instance in portal dataset gtfs incentive; do
  LOCAL_SETS+=(--set "mysql.$_instance.port=$LOCAL_MYSQL_PORT")
done
unset _instance
