module takedown/services/ncmec-reporter

go 1.26.0
