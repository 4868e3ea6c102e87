module takedown/services/audit-logger

go 1.26.0
