echo "bash v1"
