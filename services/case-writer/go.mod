module takedown/services/case-writer

go 1.26.0
